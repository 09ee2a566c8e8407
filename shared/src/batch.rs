//! One queue batch, as both consumers (enrichment and dispatch) see it: what
//! becomes of each record ([`Outcome`]), the retries handed back to the queue
//! ([`Retry`]), and dead letters written with their reason.
//!
//! Nothing is dropped without a word: every retry is logged once with the record's
//! ids and its reason, and counted by stage and reason code; every dead letter is
//! logged and counted by its code.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::chain;
use crate::hold::{Decision, HELD_TOO_LONG, HoldPolicy};
use crate::jobs::{DeadLetter, Held, LetterMessage, Stage};
use crate::ports::queue::{Outgoing, Queue, QueueError, Record};

/// What becomes of one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Handled: delete it.
    Done,
    /// Receive it again as soon as the queue allows.
    RetryNow(Reason),
    /// Receive it again, not before this long (a hold's wait, or a partner's).
    RetryAfter(Duration, Reason),
    /// Done with as received: `body` (the job with its history) goes back on the
    /// record's own queue, to be received not before `after`.
    Requeue {
        body: String,
        after: Duration,
        reason: Reason,
    },
    /// Never deliverable: it goes to the dead-letter queue with why.
    DeadLetter(DeadLetter),
}

/// A job a partner could not take now, its history counting this failure: back
/// on its own queue (`held`, with that history) to wait at least `at_least`, or,
/// once held as long as the failure allows, the letter `letter` makes of the
/// policy's words (coded `held_too_long`).
pub fn hold_or_letter(
    policy: &HoldPolicy,
    held: &impl Held,
    key: &str,
    at_least: Duration,
    reason: Reason,
    now: DateTime<Utc>,
    letter: impl FnOnce(&'static str, String) -> DeadLetter,
) -> Outcome {
    match policy.decide(held.history(), key, at_least, now) {
        Decision::Wait(after) => Outcome::Requeue {
            body: crate::ports::text(held),
            after,
            reason,
        },
        Decision::GiveUp { reason: why } => Outcome::DeadLetter(letter(HELD_TOO_LONG, why)),
    }
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
    /// The mapping version the record was built or judged under.
    pub mapping: Option<&'a str>,
}

/// Sends `value` as JSON, outside any FIFO group.
pub(crate) async fn send_json(
    queue: &impl Queue,
    value: &impl Serialize,
) -> Result<(), QueueError> {
    let body = serde_json::to_string(value).map_err(QueueError::new)?;
    queue.send(Outgoing::new(body)).await
}

/// Writes `letter` about `message` to the dead-letter queue, dated `now`: logged
/// (ids, code, reason and what it went through) and counted by its code once it
/// is stored.
pub async fn dead_letter(
    dead: &impl Queue,
    letter: &DeadLetter,
    message: &str,
    now: DateTime<Utc>,
) -> Result<(), QueueError> {
    let mut letter = letter.clone();
    letter.at.get_or_insert(now);
    tracing::warn!(
        code = letter.code,
        source = letter.source,
        stage = letter.stage.map(Stage::name),
        triggers = letter.triggers.join(" "),
        rule = letter.rule,
        event_id = letter.event_id,
        mapping = letter.mapping,
        reason = letter.reason,
        attempts = letter.history.attempts,
        first_failure = letter.history.first_failure.map(|t| t.to_rfc3339()),
        "dead letter"
    );
    let code = letter.code.clone();
    let envelope = LetterMessage::new(letter, message);
    send_json(dead, &envelope).await?;
    crate::telemetry::dead_lettered(&code);
    Ok(())
}

/// The queues a record is settled with: where it came from, and the dead letters.
#[derive(Debug)]
pub struct Queues<'q, S, D> {
    pub source: &'q S,
    pub dead: &'q D,
}

impl<S, D> Clone for Queues<'_, S, D> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S, D> Copy for Queues<'_, S, D> {}

/// Settles one record's outcome at `now`: a dead letter is written, a requeued job
/// sent back to its queue (if either fails, the record is retried instead); a
/// retry is logged with the record's ids and reason and counted. Returns the retry
/// to hand back to the queue, if any.
pub async fn settle<S: Queue, D: Queue>(
    stage: Stage,
    queues: Queues<'_, S, D>,
    record: &Record,
    ids: Ids<'_>,
    outcome: Outcome,
    now: DateTime<Utc>,
) -> Option<Retry> {
    let (after, reason, in_place) = match outcome {
        Outcome::Done => return None,
        Outcome::RetryNow(reason) => (None, reason, true),
        Outcome::RetryAfter(after, reason) => (Some(after), reason, true),
        Outcome::Requeue {
            body,
            after,
            reason,
        } => {
            let mut again = Outgoing::new(body);
            again.delay = Some(after);
            let failed = queues.source.send(again).await.err();
            if let Some(e) = &failed {
                tracing::warn!(
                    message_id = record.message_id,
                    error = %chain(e),
                    "a held job could not be requeued; it is retried in place"
                );
            }
            (Some(after), reason, failed.is_some())
        }
        Outcome::DeadLetter(letter) => {
            let letter = letter.under(ids.mapping);
            match dead_letter(queues.dead, &letter, &record.body, now).await {
                Ok(()) => return None,
                Err(e) => (None, Reason::of("dead_letter_queue_failed", &e), true),
            }
        }
    };
    tracing::warn!(
        stage = stage.name(),
        message_id = record.message_id,
        source = ids.source,
        event_id = ids.event_id,
        code = reason.code,
        reason = reason.text,
        after_ms = after.map(|a| a.as_millis() as u64),
        receives = record.receives,
        "held: will be retried"
    );
    crate::telemetry::retried(stage.name(), reason.code);
    in_place.then(|| Retry {
        message_id: record.message_id.clone(),
        after,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::queue::MemoryQueue;

    fn now() -> DateTime<Utc> {
        "2026-12-01T10:00:00Z".parse().expect("time")
    }

    #[tokio::test]
    async fn a_dead_letter_that_cannot_be_written_is_retried_with_why() {
        let (source, dead) = (MemoryQueue::default(), MemoryQueue::default());
        let queues = Queues {
            source: &source,
            dead: &dead,
        };
        let record = Record::new("m1", "{}");
        let letter = DeadLetter::new("wh-1", Stage::Enrich, "too_old", "old");
        let outcome = Outcome::DeadLetter(letter.clone());
        let ids = Ids::default();
        let settled = settle(Stage::Enrich, queues, &record, ids, outcome.clone(), now()).await;
        assert_eq!(settled, None);
        let written: LetterMessage =
            serde_json::from_str(&dead.sent()[0].body).expect("an envelope");
        let dated = DeadLetter {
            at: Some(now()),
            ..letter
        };
        assert_eq!(
            (written.dead_letter, written.message.as_str()),
            (dated, "{}")
        );

        dead.fail_next(1);
        let retry = settle(Stage::Enrich, queues, &record, ids, outcome, now())
            .await
            .expect("retried");
        assert_eq!(retry.reason.code, "dead_letter_queue_failed");
        assert!(retry.reason.text.contains("injected failure"), "{retry:?}");
    }

    #[tokio::test]
    async fn a_requeued_job_goes_back_delayed_and_a_failed_requeue_is_retried() {
        let (source, dead) = (MemoryQueue::default(), MemoryQueue::default());
        let queues = Queues {
            source: &source,
            dead: &dead,
        };
        let record = Record::new("m1", "{}");
        let requeue = Outcome::Requeue {
            body: "{\"held\":1}".into(),
            after: Duration::from_secs(30),
            reason: Reason::new("meta_unavailable", "503"),
        };
        let ids = Ids::default();
        let settled = settle(
            Stage::Dispatch,
            queues,
            &record,
            ids,
            requeue.clone(),
            now(),
        )
        .await;
        assert_eq!(settled, None, "done with: its copy is queued");
        assert_eq!(source.sent()[0].delay, Some(Duration::from_secs(30)));
        assert_eq!(source.sent()[0].body, "{\"held\":1}");
        source.fail_next(1);
        let retry = settle(Stage::Dispatch, queues, &record, ids, requeue, now())
            .await
            .expect("retried in place");
        assert_eq!(retry.after, Some(Duration::from_secs(30)));
    }

    #[tokio::test]
    async fn a_retry_keeps_its_wait_and_reason() {
        let dead = MemoryQueue::default();
        let queues = Queues {
            source: &dead,
            dead: &dead,
        };
        let reason = Reason::new("ghl_rate_limited", "wait");
        let outcome = Outcome::RetryAfter(Duration::from_secs(3), reason.clone());
        let record = Record::new("m1", "{}");
        let retry = settle(
            Stage::Enrich,
            queues,
            &record,
            Ids::default(),
            outcome,
            now(),
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
