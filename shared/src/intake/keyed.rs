//! What the routes authenticated by an API key share (posted conversions,
//! workflow calls): finding the key, checking what Meta would refuse in the
//! caller's own terms, queueing the job, and the answer.
//!
//! Answers: `2xx` with the event id once queued; `401` without a valid key; `403`
//! for a key not scoped to the location (or event type); `400` naming what is
//! wrong; `413` over [`MAX_BODY_BYTES`]; the route's retry status when the queue
//! fails (the caller should send again; the event id makes that harmless).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::MAX_BODY_BYTES;
use super::keys::{ApiKey, ApiKeys, Credentials, Forbidden};
use crate::capi::{Rejection, check_event_time, is_currency_code};
use crate::jobs::EnrichJob;
use crate::jobs::MAX_JOB_BYTES;
use crate::ports::queue::{Queue, QueueError};

/// Why a keyed request was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum KeyedError {
    #[error(
        "missing or unknown API key (send Authorization: Bearer <key> or X-Api-Key: <key>; a workflow call may instead end its URL with /<key>, or carry it as the Custom Data apiKey)"
    )]
    Unauthorized,
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error("invalid {what}: {why}")]
    Invalid { what: &'static str, why: String },
    #[error("body of {size} bytes is over the {MAX_BODY_BYTES}-byte limit")]
    TooLarge { size: usize },
    #[error("too large to queue: {size} bytes as a job, at most {MAX_JOB_BYTES}")]
    TooLargeToQueue { size: usize },
    #[error("could not queue it; retry")]
    Queue(#[source] QueueError),
}

impl KeyedError {
    /// A stable name for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            KeyedError::Unauthorized => "unauthorized",
            KeyedError::Forbidden(_) => "forbidden",
            KeyedError::Invalid { .. } => "invalid",
            KeyedError::TooLarge { .. } => "too_large",
            KeyedError::TooLargeToQueue { .. } => "too_large_to_queue",
            KeyedError::Queue(_) => "enqueue_failed",
        }
    }
}

/// A request accepted: the event id Meta will receive, and the key (by its id)
/// that sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub event_id: String,
    pub key_id: String,
}

/// The longest `eventId` a caller may choose.
pub const MAX_EVENT_ID: usize = 128;

/// One keyed route: what it takes (`what`: "conversion", "workflow call", named in
/// each failure in the caller's own terms), and how it answers.
#[derive(Debug, Clone, Copy)]
pub struct Checks {
    pub what: &'static str,
    /// The status once queued.
    pub accepted: u16,
    /// The status that asks the caller to send again, when the queue (or the
    /// keys) cannot be reached: what the caller retries.
    pub retry: u16,
}

impl Checks {
    /// The HTTP status the caller gets for `e`.
    pub fn status(self, e: &KeyedError) -> u16 {
        match e {
            KeyedError::Unauthorized => 401,
            KeyedError::Forbidden(_) => 403,
            KeyedError::Invalid { .. } => 400,
            KeyedError::TooLarge { .. } | KeyedError::TooLargeToQueue { .. } => 413,
            KeyedError::Queue(_) => self.retry,
        }
    }

    /// The answer: the event id once queued, else the error.
    pub fn reply(self, outcome: &Result<Accepted, KeyedError>) -> (u16, Value) {
        match outcome {
            Ok(accepted) => (
                self.accepted,
                json!({"status": "accepted", "eventId": accepted.event_id}),
            ),
            Err(e) => (self.status(e), json!({"error": e.to_string()})),
        }
    }

    pub fn invalid(self, why: impl Into<String>) -> KeyedError {
        KeyedError::Invalid {
            what: self.what,
            why: why.into(),
        }
    }

    /// The key the request carries, if it is one of `keys`, for a body within
    /// [`MAX_BODY_BYTES`].
    pub fn authenticate<'k>(
        self,
        keys: &'k ApiKeys,
        credentials: Credentials<'_>,
        body: &[u8],
    ) -> Result<&'k ApiKey, KeyedError> {
        let key = keys.find(credentials).ok_or(KeyedError::Unauthorized)?;
        if body.len() > MAX_BODY_BYTES {
            return Err(KeyedError::TooLarge { size: body.len() });
        }
        Ok(key)
    }

    /// A caller's `eventId`: 1 to [`MAX_EVENT_ID`] printable ASCII characters.
    pub fn event_id(self, id: Option<&str>) -> Result<(), KeyedError> {
        match id {
            Some(id)
                if id.trim().is_empty()
                    || id.len() > MAX_EVENT_ID
                    || !id.bytes().all(|b| (b' '..=b'~').contains(&b)) =>
            {
                Err(self.invalid(format!(
                    "eventId must be 1 to {MAX_EVENT_ID} printable ASCII characters"
                )))
            }
            _ => Ok(()),
        }
    }

    /// When it happened (`field` names it), within Meta's window as of `now`.
    pub fn time(
        self,
        at: DateTime<Utc>,
        field: &str,
        now: DateTime<Utc>,
    ) -> Result<(), KeyedError> {
        check_event_time(at.timestamp(), now.timestamp()).map_err(|why| match why {
            Rejection::TooOld { .. } => self.invalid(format!(
                "{field} is more than 7 days ago; Meta accepts the last 7 days"
            )),
            _ => self.invalid(format!("{field} is in the future")),
        })
    }

    /// A value that is a non-negative number, and a three-letter currency.
    pub fn money(self, value: Option<f64>, currency: Option<&str>) -> Result<(), KeyedError> {
        if let Some(value) = value
            && !(value.is_finite() && value >= 0.0)
        {
            return Err(self.invalid("value must be a non-negative number"));
        }
        if let Some(currency) = currency
            && !is_currency_code(currency)
        {
            return Err(self.invalid(format!(
                "currency {currency:?} is not a three-letter ISO 4217 code"
            )));
        }
        Ok(())
    }
}

/// Queues `job` in its contact's FIFO group, deduplicated by its key.
pub async fn enqueue(queue: &impl Queue, job: &EnrichJob) -> Result<(), KeyedError> {
    let message = job
        .outgoing()
        .map_err(|e| KeyedError::Queue(QueueError::new(e)))?;
    if message.body.len() > MAX_JOB_BYTES {
        let size = message.body.len();
        return Err(KeyedError::TooLargeToQueue { size });
    }
    queue.send(message).await.map_err(KeyedError::Queue)
}

/// A request body for the keyed routes' tests: `base` with `extra`'s fields over it.
#[cfg(test)]
pub(crate) fn body_with(mut base: Value, extra: Value) -> Vec<u8> {
    if let (Value::Object(base), Value::Object(extra)) = (&mut base, extra) {
        base.extend(extra);
    }
    serde_json::to_vec(&base).expect("json")
}
