//! The enrichment function's batch: jobs in, dispatch jobs and dead letters out.
//!
//! A record is acknowledged only once everything it produced is queued; anything
//! that can never reach Meta is dead-lettered with its reason. A job GHL (or our
//! own queue or table) fails is held: retried after a growing wait, its history
//! kept in the state store under `held#{key}`, until it succeeds or has been held
//! as long as the failure allows ([`crate::hold`]). On a FIFO queue, once a record
//! of a group is held, the group's later records wait with it, unhandled, so one
//! contact's changes keep their order; the queue's receive limit is far beyond any
//! hold, so they never reach it.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::audience::remember_members;
use super::{Enriched, Enricher, remember};
use crate::batch::{self, Ids, Outcome, Queues, Reason, Retry};
use crate::error::chain;
use crate::ghl::{GhlReader, GhlWriter};
use crate::hold::{Decision, HELD_TOO_LONG, HoldPolicy};
use crate::jobs::{DeadLetter, EnrichJob, History, Stage};
use crate::mapping::Mapping;
use crate::mapping::audience::REMEMBERED_FOR;
use crate::ports::queue::{Outgoing, Queue, QueueError, Record};
use crate::ports::state::StateStore;

/// The enrichment stage over its ports.
#[derive(Debug)]
pub struct EnrichConsumer<'a, G, S, Q> {
    pub mapping: &'a Mapping,
    pub ghl: &'a G,
    pub state: &'a S,
    /// The enrichment queue itself.
    pub source: &'a Q,
    pub dispatch: &'a Q,
    pub dead: &'a Q,
    pub policy: HoldPolicy,
    /// The source queue's receive limit: a record about to reach it becomes a
    /// letter with its cause first (the limit is set far beyond any hold).
    pub max_receives: u32,
}

/// The state record holding a held job's history.
fn held_key(job_key: &str) -> String {
    format!("held#{job_key}")
}

impl<G: GhlReader + GhlWriter, S: StateStore, Q: Queue> EnrichConsumer<'_, G, S, Q> {
    /// Enriches every record of a batch; the records to retry, each with its wait
    /// and reason.
    pub async fn handle(&self, records: &[Record], now: DateTime<Utc>) -> Vec<Retry> {
        let mut enricher = Enricher::new(self.mapping, self.ghl, self.state, self.policy);
        let queues = Queues {
            source: self.source,
            dead: self.dead,
        };
        let mut failed = Vec::new();
        // Groups with a record held, and how long that record waits.
        let mut stalled: HashMap<&str, Option<Duration>> = HashMap::new();
        for record in records {
            let group = record.group_id.as_deref();
            let job = serde_json::from_str::<EnrichJob>(&record.body);
            let key = job.as_ref().ok().map(EnrichJob::key);
            let outcome = match (group.and_then(|g| stalled.get(g)), &job) {
                (Some(wait), _) => {
                    let reason = Reason::new(
                        "waiting_for_earlier_change",
                        "an earlier change of this contact is held",
                    );
                    match wait {
                        Some(wait) => Outcome::RetryAfter(*wait, reason),
                        None => Outcome::RetryNow(reason),
                    }
                }
                (_, Err(e)) => Outcome::DeadLetter(DeadLetter::new(
                    &record.message_id,
                    Stage::Enrich,
                    "malformed_message",
                    crate::ghl::webhook::FieldError::of("", e).to_string(),
                )),
                (_, Ok(job)) => self.enrich_record(&mut enricher, record, job, now).await,
            };
            let ids = Ids {
                source: key,
                event_id: None,
                mapping: Some(&self.mapping.version),
            };
            if let Some(retry) =
                batch::settle(Stage::Enrich, queues, record, ids, outcome, now).await
            {
                if let Some(g) = group {
                    stalled.entry(g).or_insert(retry.after);
                }
                failed.push(retry);
            }
        }
        failed
    }

    /// One job: its dispatch jobs and letters queued, its tags remembered.
    async fn enrich_record(
        &self,
        enricher: &mut Enricher<'_, G, S>,
        record: &Record,
        job: &EnrichJob,
        now: DateTime<Utc>,
    ) -> Outcome {
        // A job done before (redelivered after SQS's deduplication window) is skipped.
        match self.state.processed(job.key()).await {
            Ok(true) => return Outcome::Done,
            Ok(false) => {}
            Err(e) => {
                return self
                    .hold(
                        record,
                        job,
                        Reason::of("state_store_failed", &e),
                        Duration::ZERO,
                        vec![],
                        now,
                    )
                    .await;
            }
        }
        let outcome = match job {
            EnrichJob::WriteBack(write) => enricher.write_back(write, record.receives, now).await,
            job => enricher.enrich(job, now).await,
        };
        let (jobs, dead_letters, seen, audience, records) = match outcome {
            Enriched::Done {
                dispatch,
                dead_letters,
                seen,
                audience,
                records,
            } => (dispatch, dead_letters, seen, audience, records),
            Enriched::Retry {
                reason,
                after,
                triggers,
            } => return self.hold(record, job, reason, after, triggers, now).await,
        };
        let own = |code: &'static str, e: &dyn std::error::Error| Reason::of(code, e);
        // All in as few calls as the queue takes.
        let events = jobs.iter().map(serde_json::to_string);
        let changes = audience.iter().map(|c| serde_json::to_string(&c.job));
        let messages = events
            .chain(changes)
            .map(|body| body.map(Outgoing::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(QueueError::new);
        let sent = match messages {
            Ok(messages) => self.dispatch.send_all(messages).await,
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            let reason = own("dispatch_queue_failed", &e);
            return self
                .hold(record, job, reason, Duration::ZERO, vec![], now)
                .await;
        }
        for out in &jobs {
            crate::telemetry::event_built(self.mapping.metric_name(&out.event.event_name));
        }
        for letter in &dead_letters {
            let letter = letter.clone().under(Some(&self.mapping.version));
            if let Err(e) = batch::dead_letter(self.dead, &letter, &record.body, now).await {
                return Outcome::RetryNow(own("dead_letter_queue_failed", &e));
            }
        }
        // Remembered once queued: a job retried after a failed send makes the same
        // changes again, with the same numbers, and dispatch applies each once.
        if let Err(e) = remember_members(self.state, &audience).await {
            let reason = own("state_store_failed", &e);
            return self
                .hold(record, job, reason, Duration::ZERO, vec![], now)
                .await;
        }
        let remembered = match &seen {
            Some(seen) => remember(self.state, seen).await,
            None => Ok(()),
        };
        let remembered = match remembered {
            Ok(()) if !records.is_empty() => self.state.set_records(&records, REMEMBERED_FOR).await,
            other => other,
        };
        if let Err(e) = remembered {
            let reason = own("state_store_failed", &e);
            return self
                .hold(record, job, reason, Duration::ZERO, vec![], now)
                .await;
        }
        // A job with dead letters stays open, so it can be redriven once its cause is
        // fixed; its delivered events would only repeat their ids, which Meta ignores.
        if dead_letters.is_empty()
            && let Err(e) = self.state.mark_processed(job.key()).await
        {
            let reason = own("state_store_failed", &e);
            return self
                .hold(record, job, reason, Duration::ZERO, vec![], now)
                .await;
        }
        if record.receives > 1 {
            // It was held before: its history is done with.
            if let Err(e) = self.state.delete_record(&held_key(job.key())).await {
                tracing::warn!(webhook_id = job.key(), error = %chain(&e), "cannot clear a held job's history");
            }
        }
        Outcome::Done
    }

    /// The job failed for `reason`: it waits (at least `at_least`), its history
    /// kept, or becomes a letter once held as long as the failure allows, or once
    /// the queue's receive limit is near.
    async fn hold(
        &self,
        record: &Record,
        job: &EnrichJob,
        reason: Reason,
        at_least: Duration,
        triggers: Vec<String>,
        now: DateTime<Utc>,
    ) -> Outcome {
        let key = held_key(job.key());
        let mut history: History = match self.state.record(&key).await {
            Ok(text) => text
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default(),
            Err(e) => {
                tracing::warn!(webhook_id = job.key(), error = %chain(&e), "cannot read a held job's history");
                History::default()
            }
        };
        history.failed(reason.code, &reason.text, now);
        history.attempts = history.attempts.max(record.receives);
        // Held since it was first received, even if its history was lost.
        if let Some(first) = record.first_received {
            history.first_failure = Some(history.first_failure.map_or(first, |f| f.min(first)));
        }
        let decision = match self.policy.decide(&history, job.key(), at_least, now) {
            Decision::Wait(_) if record.receives + 1 >= self.max_receives => Decision::GiveUp {
                reason: format!(
                    "received {} times, at the queue's limit, without success; the last failure: {}",
                    record.receives, reason.text
                ),
            },
            decision => decision,
        };
        match decision {
            Decision::Wait(wait) => {
                let keep = self.policy.limit(reason.code) + Duration::from_secs(24 * 3600);
                let text = crate::ports::text(&history);
                if let Err(e) = self.state.set_record(&key, &text, keep).await {
                    tracing::warn!(webhook_id = job.key(), error = %chain(&e), "cannot keep a held job's history");
                }
                Outcome::RetryAfter(wait, reason)
            }
            Decision::GiveUp { reason: why } => {
                if let Err(e) = self.state.delete_record(&key).await {
                    tracing::warn!(webhook_id = job.key(), error = %chain(&e), "cannot clear a held job's history");
                }
                let mut letter = DeadLetter::new(job.key(), Stage::Enrich, HELD_TOO_LONG, why);
                letter.triggers = triggers;
                letter.history = history;
                Outcome::DeadLetter(letter)
            }
        }
    }
}
