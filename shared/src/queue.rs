//! The queue port: how functions hand work to each other. Adapters: SQS (FIFO and
//! standard) on AWS, an embedded durable queue in local mode, and [`MemoryQueue`]
//! for tests.

use std::future::Future;
use std::sync::Mutex;

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// JSON text.
    pub body: String,
    /// FIFO ordering group (location and contact): per-contact order.
    pub group_id: Option<String>,
    /// FIFO deduplication id (the webhook's idempotency key).
    pub dedup_id: Option<String>,
}

/// A message could not be queued; the caller must not acknowledge its input.
#[derive(Debug, thiserror::Error)]
#[error("could not queue the message: {source}")]
pub struct QueueError {
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl QueueError {
    /// Wraps an adapter's error.
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        QueueError {
            source: source.into(),
        }
    }
}

/// Somewhere messages can be sent.
pub trait Queue: Send + Sync {
    /// Sends one message; `Ok` means it is stored durably.
    fn send(&self, message: Outgoing) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// A queue in memory, for tests: keeps what was sent and can be told to fail.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    sent: Mutex<Vec<Outgoing>>,
    failures: Mutex<u32>,
}

impl MemoryQueue {
    /// The next `n` sends fail.
    pub fn fail_next(&self, n: u32) {
        if let Ok(mut failures) = self.failures.lock() {
            *failures = n;
        }
    }

    /// Everything sent so far, in order.
    pub fn sent(&self) -> Vec<Outgoing> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Queue for MemoryQueue {
    async fn send(&self, message: Outgoing) -> Result<(), QueueError> {
        let mut failures = self
            .failures
            .lock()
            .map_err(|_| QueueError::new("poisoned"))?;
        if *failures > 0 {
            *failures -= 1;
            return Err(QueueError::new("injected failure"));
        }
        drop(failures);
        self.sent
            .lock()
            .map_err(|_| QueueError::new("poisoned"))?
            .push(message);
        Ok(())
    }
}
