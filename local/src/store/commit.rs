//! Group commit: messages sent at the same moment share one transaction and one
//! `fsync`. A sender waits on its reply, given only once the transaction holding its
//! messages is on disk, so `200` still means kept; but a hundred webhooks arriving
//! together cost the disk one sync, not a hundred. The committer is a thread of its
//! own: it takes everything waiting, commits it, answers each sender, and takes what
//! came meanwhile: a busy disk makes bigger groups, never longer queues.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use ghl_capi::ports::queue::Outgoing;
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::{StoreError, durably, lock, queue_in};

/// At most this many senders share a commit, so the lock is never held for long.
const MAX_GROUP: usize = 512;

/// One sender's messages, all or none, and where to answer.
struct Waiting {
    queue: &'static str,
    messages: Vec<Outgoing>,
    /// Whether a message whose deduplication id is a job done is a repeat too.
    once: bool,
    reply: oneshot::Sender<Result<Vec<bool>, StoreError>>,
}

/// The way to the committer thread; the thread ends once every handle is dropped.
#[derive(Debug, Clone)]
pub(super) struct Committer(mpsc::Sender<Waiting>);

impl Committer {
    pub(super) fn start(db: Arc<Mutex<Connection>>) -> std::io::Result<Self> {
        let (sender, waiting) = mpsc::channel();
        std::thread::Builder::new()
            .name("store-commit".into())
            .spawn(move || run(&db, &waiting))?;
        Ok(Committer(sender))
    }

    /// Queues `messages` (all or none) in the next shared commit; for each, whether
    /// it was new (see [`queue_in`]).
    pub(super) async fn send(
        &self,
        queue: &'static str,
        messages: Vec<Outgoing>,
        once: bool,
    ) -> Result<Vec<bool>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let waiting = Waiting {
            queue,
            messages,
            once,
            reply,
        };
        self.0.send(waiting).map_err(|_| StoreError::Stopped)?;
        answer.await.map_err(|_| StoreError::Stopped)?
    }
}

fn run(db: &Mutex<Connection>, waiting: &mpsc::Receiver<Waiting>) {
    while let Ok(first) = waiting.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP
            && let Ok(more) = waiting.try_recv()
        {
            group.push(more);
        }
        commit(&mut lock(db), group);
    }
}

/// One transaction for the whole group; a sender whose own statements fail is
/// rolled back to its savepoint and told, the others go on.
fn commit(db: &mut Connection, group: Vec<Waiting>) {
    let mut outcomes = Vec::with_capacity(group.len());
    let committed = durably(db, |tx| {
        for waiting in &group {
            let mut own = tx.savepoint()?;
            let outcome = queue_in(&own, waiting.queue, &waiting.messages, waiting.once);
            if outcome.is_ok() {
                own.commit()?;
            } else {
                own.rollback()?;
            }
            outcomes.push(outcome);
        }
        Ok(())
    });
    match committed {
        Ok(()) => {
            for (waiting, outcome) in group.into_iter().zip(outcomes) {
                // A sender gone (its client hung up) is told nothing: its messages are kept.
                let _ = waiting.reply.send(outcome.map_err(StoreError::Sql));
            }
        }
        Err(e) => {
            let shared = Arc::new(e);
            for waiting in group {
                let _ = waiting
                    .reply
                    .send(Err(StoreError::Commit(Arc::clone(&shared))));
            }
        }
    }
}
