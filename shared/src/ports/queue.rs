//! The queue port: how stages hand work to each other. Adapters: SQS (FIFO and
//! standard) on AWS, an embedded durable queue in local mode, and `MemoryQueue` for
//! tests.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::BoxError;

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// JSON text.
    pub body: String,
    /// FIFO ordering group (location and contact): per-contact order.
    pub group_id: Option<String>,
    /// FIFO deduplication id (the webhook's idempotency key).
    pub dedup_id: Option<String>,
    /// Not received before this long (standard queues only: at most 15 minutes).
    pub delay: Option<Duration>,
}

impl Outgoing {
    /// A message outside any FIFO group, received at once.
    pub fn new(body: String) -> Self {
        Outgoing {
            body,
            group_id: None,
            dedup_id: None,
            delay: None,
        }
    }
}

/// One message received from a queue, as a consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub message_id: String,
    pub body: String,
    /// FIFO group, when the queue is FIFO.
    pub group_id: Option<String>,
    /// How often it was received, this time included (1 the first time).
    pub receives: u32,
    /// When it was first received.
    pub first_received: Option<DateTime<Utc>>,
}

impl Record {
    /// A record received for the first time now.
    pub fn new(message_id: impl Into<String>, body: impl Into<String>) -> Self {
        Record {
            message_id: message_id.into(),
            body: body.into(),
            group_id: None,
            receives: 1,
            first_received: None,
        }
    }
}

/// A message could not be queued; the caller must not acknowledge its input.
#[derive(Debug, thiserror::Error)]
#[error("could not queue the message: {source}")]
pub struct QueueError {
    #[source]
    pub source: BoxError,
}

impl QueueError {
    /// Wraps an adapter's error.
    pub fn new(source: impl Into<BoxError>) -> Self {
        QueueError {
            source: source.into(),
        }
    }
}

/// Whether a message sent with a deduplication id was new to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Stored; or the queue cannot tell (SQS answers a repeat as a new message).
    Queued,
    /// The queue has had a message with this deduplication id: not stored again.
    Repeat,
}

/// Somewhere messages can be sent.
pub trait Queue: Send + Sync {
    /// Sends one message; `Ok` means it is stored durably.
    fn send(&self, message: Outgoing) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Sends one message, saying whether its deduplication id was seen before where
    /// the adapter can tell (the local store can; SQS cannot, and says `Queued`).
    fn send_once(
        &self,
        message: Outgoing,
    ) -> impl Future<Output = Result<Sent, QueueError>> + Send {
        async move { self.send(message).await.map(|()| Sent::Queued) }
    }

    /// Sends several; `Ok` means all are stored. One by one unless the adapter can
    /// send several in one call. On `Err` some may be stored: receivers must take
    /// a message twice calmly (every job is idempotent by its id).
    fn send_all(
        &self,
        messages: Vec<Outgoing>,
    ) -> impl Future<Output = Result<(), QueueError>> + Send {
        async move {
            for message in messages {
                self.send(message).await?;
            }
            Ok(())
        }
    }
}

#[cfg(any(test, feature = "test-util"))]
pub use memory::MemoryQueue;

#[cfg(any(test, feature = "test-util"))]
mod memory {
    use std::sync::Mutex;

    use super::{Outgoing, Queue, QueueError};

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

        /// Everything sent since the last take, in order, as a consumer receives it.
        pub fn take(&self) -> Vec<Outgoing> {
            self.sent
                .lock()
                .map(|mut s| std::mem::take(&mut *s))
                .unwrap_or_default()
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
}
