//! `serve`'s tasks, watched: one that ends before it is told to stop (a worker's
//! panic) stops `serve`, and how each ended is read at shutdown, never dropped, so
//! a panic is reported in `serve`'s answer and its exit status.

use std::future::Future;

use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Tasks spawned (on one runtime) and watched, joined together.
#[derive(Debug)]
pub struct Tasks {
    running: Vec<(&'static str, JoinHandle<()>)>,
    ended: mpsc::UnboundedSender<&'static str>,
    on: Handle,
}

/// Word of a task's end, whatever ended it.
#[derive(Debug)]
pub struct Ended(mpsc::UnboundedReceiver<&'static str>);

/// Says a task ended when dropped: on its return, and in the unwinding of a panic.
struct Telling(&'static str, mpsc::UnboundedSender<&'static str>);

impl Drop for Telling {
    fn drop(&mut self) {
        // No one listening: `serve` is stopping anyway.
        let _ = self.1.send(self.0);
    }
}

/// The runtime the pipeline's tasks run on, threads of their own: their calls to
/// the store block while another holds it, and must never hold up the threads
/// answering webhooks (whose sends wait on the committer without blocking).
#[derive(Debug)]
pub struct Pipeline(Option<tokio::runtime::Runtime>);

impl Pipeline {
    pub fn start() -> std::io::Result<Pipeline> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("pipeline")
            .enable_all()
            .build()?;
        Ok(Pipeline(Some(runtime)))
    }

    pub fn handle(&self) -> Handle {
        // The runtime is there until the pipeline is dropped.
        self.0
            .as_ref()
            .map_or_else(Handle::current, |r| r.handle().clone())
    }
}

impl Drop for Pipeline {
    /// Dropped inside `serve` (an async context, where a runtime may not wait for
    /// its threads), on its way out or on an early error: whatever still runs on it
    /// is dropped without waiting.
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// A set of tasks to run on the runtime `on`, and the word of their ends.
pub fn watched(on: Handle) -> (Tasks, Ended) {
    let (ended, heard) = mpsc::unbounded_channel();
    let tasks = Tasks {
        running: Vec::new(),
        ended,
        on,
    };
    (tasks, Ended(heard))
}

impl Tasks {
    /// Another set whose ends are told to the same [`Ended`], joined on its own
    /// (the journal's writer, stopped after the others).
    pub fn beside(&self) -> Tasks {
        Tasks {
            running: Vec::new(),
            ended: self.ended.clone(),
            on: self.on.clone(),
        }
    }

    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let telling = Telling(name, self.ended.clone());
        let handle = self.on.spawn(async move {
            let _telling = telling;
            task.await;
        });
        self.running.push((name, handle));
    }

    /// Waits for every task; the names of those that panicked, each logged.
    pub async fn join(self) -> Vec<&'static str> {
        let mut panicked = Vec::new();
        for (name, handle) in self.running {
            if let Err(e) = handle.await {
                tracing::error!(task = name, error = %e, "a task of serve ended in a panic");
                panicked.push(name);
            }
        }
        panicked
    }
}

impl Ended {
    /// The first task to end (before `serve` is stopped, only by a fault).
    pub async fn first(mut self) -> &'static str {
        match self.0.recv().await {
            Some(name) => name,
            // Every sender kept by a running set: never while tasks run.
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_task_is_heard_of_at_once_and_named_when_joined() {
        let (mut tasks, ended) = watched(Handle::current());
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        tasks.spawn("steady", async move {
            let _ = stopped.changed().await;
        });
        tasks.spawn("faulty", async { panic!("a worker's bug") });
        assert_eq!(ended.first().await, "faulty");
        let _ = stop.send(true);
        assert_eq!(tasks.join().await, vec!["faulty"]);
    }
}
