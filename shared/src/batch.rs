//! One queue batch, as both consumers (enrichment and dispatch) see it: what
//! becomes of each record ([`Outcome`]), the retries handed back to the queue
//! ([`Retry`]), and dead letters written with their reason.
//!
//! Nothing is dropped without a word: every retry is logged once with the record's
//! ids and its reason, and counted by stage and reason code; every dead letter is
//! logged and counted by its code.

use std::time::Duration;

use serde::Serialize;

use crate::error::chain;
use crate::jobs::{DeadLetter, LetterMessage, Stage};
use crate::ports::queue::{Outgoing, Queue, QueueError, Record};

/// What becomes of one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Handled: delete it.
    Done,
    /// Receive it again as soon as the queue allows.
    RetryNow(Reason),
    /// Receive it again, not before this long (a partner said how long to wait).
    RetryAfter(Duration, Reason),
    /// Never deliverable: it goes to the dead-letter queue with why.
    DeadLetter(DeadLetter),
}

/// Why a record goes round again: a stable code (a metric dimension) and the
/// cause in words (for the log and the record's history). Never PII.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub code: &'static str,
    pub text: String,
}

impl Reason {
    pub fn new(code: &'static str, text: impl Into<String>) -> Self {
        Reason {
            code,
            text: text.into(),
        }
    }

    /// An error's reason: `code`, and the error with each of its causes in words.
    pub fn of(code: &'static str, error: &dyn std::error::Error) -> Self {
        Reason::new(code, chain(error))
    }
}

/// A record handed back to the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    pub message_id: String,
    /// Not before this long; `None`: when the queue redelivers it.
    pub after: Option<Duration>,
    pub reason: Reason,
}

/// The ids a log line about a record carries (ids only, never a payload).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ids<'a> {
    /// The webhook id, or a posted conversion's event id: where it all started.
    pub source: Option<&'a str>,
    pub event_id: Option<&'a str>,
}

/// Sends `value` as JSON, outside any FIFO group.
pub(crate) async fn send_json(
    queue: &impl Queue,
    value: &impl Serialize,
) -> Result<(), QueueError> {
    let body = serde_json::to_string(value).map_err(QueueError::new)?;
    queue
        .send(Outgoing {
            body,
            group_id: None,
            dedup_id: None,
        })
        .await
}

/// Writes `letter` about `message` to the dead-letter queue: logged (ids, code and
/// reason) and counted by its code once it is stored.
pub async fn dead_letter(
    dead: &impl Queue,
    letter: &DeadLetter,
    message: &str,
) -> Result<(), QueueError> {
    let envelope = LetterMessage {
        dead_letter: letter.clone(),
        message: message.to_owned(),
    };
    send_json(dead, &envelope).await?;
    tracing::warn!(
        code = letter.code,
        source = letter.source,
        rule = letter.rule,
        reason = letter.reason,
        "dead letter"
    );
    crate::telemetry::dead_lettered(&letter.code);
    Ok(())
}

/// Settles one record's outcome: a dead letter is written (if that fails, the
/// record is retried); a retry is logged with the record's ids and reason and
/// counted. Returns the retry to hand back to the queue, if any.
pub async fn settle(
    stage: Stage,
    dead: &impl Queue,
    record: &Record,
    ids: Ids<'_>,
    outcome: Outcome,
) -> Option<Retry> {
    let (after, reason) = match outcome {
        Outcome::Done => return None,
        Outcome::RetryNow(reason) => (None, reason),
        Outcome::RetryAfter(after, reason) => (Some(after), reason),
        Outcome::DeadLetter(letter) => match dead_letter(dead, &letter, &record.body).await {
            Ok(()) => return None,
            Err(e) => (None, Reason::of("dead_letter_queue_failed", &e)),
        },
    };
    tracing::warn!(
        stage = stage.name(),
        message_id = record.message_id,
        source = ids.source,
        event_id = ids.event_id,
        code = reason.code,
        reason = reason.text,
        after_ms = after.map(|a| a.as_millis() as u64),
        "record will be retried"
    );
    crate::telemetry::retried(stage.name(), reason.code);
    Some(Retry {
        message_id: record.message_id.clone(),
        after,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::queue::MemoryQueue;

    fn record() -> Record {
        Record {
            message_id: "m1".into(),
            body: "{}".into(),
            group_id: None,
        }
    }

    #[tokio::test]
    async fn a_dead_letter_that_cannot_be_written_is_retried_with_why() {
        let dead = MemoryQueue::default();
        let letter = DeadLetter {
            source: "wh-1".into(),
            rule: None,
            code: "too_old".into(),
            reason: "old".into(),
        };
        let outcome = Outcome::DeadLetter(letter.clone());
        assert_eq!(
            settle(
                Stage::Enrich,
                &dead,
                &record(),
                Ids::default(),
                outcome.clone()
            )
            .await,
            None
        );
        let written: LetterMessage =
            serde_json::from_str(&dead.sent()[0].body).expect("an envelope");
        assert_eq!(
            (written.dead_letter, written.message.as_str()),
            (letter, "{}")
        );

        dead.fail_next(1);
        let retry = settle(Stage::Enrich, &dead, &record(), Ids::default(), outcome)
            .await
            .expect("retried");
        assert_eq!(retry.reason.code, "dead_letter_queue_failed");
        assert!(retry.reason.text.contains("injected failure"), "{retry:?}");
    }

    #[tokio::test]
    async fn a_retry_keeps_its_wait_and_reason() {
        let dead = MemoryQueue::default();
        let reason = Reason::new("ghl_rate_limited", "wait");
        let retry = settle(
            Stage::Enrich,
            &dead,
            &record(),
            Ids::default(),
            Outcome::RetryAfter(Duration::from_secs(3), reason.clone()),
        )
        .await;
        assert_eq!(
            retry,
            Some(Retry {
                message_id: "m1".into(),
                after: Some(Duration::from_secs(3)),
                reason
            })
        );
    }
}
