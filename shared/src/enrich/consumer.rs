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
use super::mark::done_before;
use super::read::Read;
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

/// A job enriched whose outputs wait to be queued with the batch's others (one
/// send for many jobs), then written down.
struct Pending<'r> {
    record: &'r Record,
    job: EnrichJob,
    messages: Vec<Outgoing>,
    built: Vec<String>,
    dead_letters: Vec<DeadLetter>,
    seen: Option<Box<super::SeenTags>>,
    audience: Vec<super::audience::Change>,
    records: Vec<(String, String)>,
}

/// A job read ([`Enricher::read`]), waiting for its wave's GHL reads.
struct Ready<'r> {
    record: &'r Record,
    job: EnrichJob,
    read: Option<Result<Read, Enriched>>,
}

impl Ready<'_> {
    /// What the job gives to build from, unless it is settled already.
    fn read(&self) -> Option<&Read> {
        self.read.as_ref()?.as_ref().ok()
    }
}

/// What became of a job once enriched: settled, or waiting for its send.
enum Step<'r> {
    Settled(Outcome),
    Pending(Pending<'r>),
}

/// A batch's progress: the groups with a record held (and how long that record
/// waits), the records to retry, and the jobs waiting for their send.
struct Progress<'r> {
    stalled: HashMap<&'r str, Option<Duration>>,
    failed: Vec<Retry>,
    pending: Vec<Pending<'r>>,
}

impl<G: GhlReader + GhlWriter, S: StateStore, Q: Queue> EnrichConsumer<'_, G, S, Q> {
    /// Enriches every record of a batch; the records to retry, each with its wait
    /// and reason. The batch goes in waves of distinct contacts (FIFO groups): a
    /// wave's jobs are read, GHL is asked for what they need side by side, each is
    /// enriched in order, and their outputs go out together, in as few sends as
    /// the queue takes. A contact's next change is in a later wave, read only once
    /// its earlier ones are queued and written down, so it sees the tags they left.
    pub async fn handle(&self, records: &[Record], now: DateTime<Utc>) -> Vec<Retry> {
        let mut enricher = Enricher::new(self.mapping, self.ghl, self.state, self.policy);
        let mut progress = Progress {
            stalled: HashMap::new(),
            failed: Vec::new(),
            pending: Vec::new(),
        };
        let mut wave: Vec<&Record> = Vec::new();
        for record in records {
            let group = record.group_id.as_deref();
            // A record of no group may be of any contact: it waits for all before it.
            if group.is_none() || wave.iter().any(|r| r.group_id.as_deref() == group) {
                let wave = std::mem::take(&mut wave);
                self.wave(&mut enricher, &mut progress, wave, now).await;
            }
            wave.push(record);
        }
        self.wave(&mut enricher, &mut progress, wave, now).await;
        progress.failed
    }

    /// One wave: each record read (or settled), GHL's reads made together, each
    /// job enriched, then their outputs queued and written down.
    async fn wave<'r>(
        &self,
        enricher: &mut Enricher<'_, G, S>,
        progress: &mut Progress<'r>,
        wave: Vec<&'r Record>,
        now: DateTime<Utc>,
    ) {
        let mut ready = Vec::new();
        for record in wave {
            if let Some(read) = self.read(enricher, progress, record, now).await {
                ready.push(read);
            }
        }
        let reads: Vec<&Read> = ready.iter().filter_map(Ready::read).collect();
        enricher.prefetch(reads).await;
        for Ready { record, job, read } in ready {
            let key = job.key().to_owned();
            match self.enrich_record(enricher, record, job, read, now).await {
                Step::Pending(pending) => progress.pending.push(pending),
                Step::Settled(outcome) => {
                    self.settle(progress, record, Some(&key), outcome, now)
                        .await;
                }
            }
        }
        self.flush(progress, now).await;
    }

    /// `record`'s job, read for enrichment; `None` once settled (its group held,
    /// itself malformed or done before, or the state store failing).
    async fn read<'r>(
        &self,
        enricher: &mut Enricher<'_, G, S>,
        progress: &mut Progress<'r>,
        record: &'r Record,
        now: DateTime<Utc>,
    ) -> Option<Ready<'r>> {
        let group = record.group_id.as_deref();
        let job = serde_json::from_str::<EnrichJob>(&record.body);
        let key = job.as_ref().ok().map(|j| j.key().to_owned());
        let outcome = match (group.and_then(|g| progress.stalled.get(g)), job) {
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
                crate::ghl::webhook::FieldError::of("", &e).to_string(),
            )),
            // A job done before (redelivered after SQS's deduplication window) is skipped.
            (_, Ok(job)) => match done_before(self.state, &job).await {
                Ok((true, _)) => Outcome::Done,
                Ok((false, prior)) => {
                    let read = enricher.read(&job, prior, now).await;
                    return Some(Ready { record, job, read });
                }
                Err(e) => {
                    let reason = Reason::of("state_store_failed", &e);
                    self.hold(record, &job, reason, Duration::ZERO, vec![], now)
                        .await
                }
            },
        };
        self.settle(progress, record, key.as_deref(), outcome, now)
            .await;
        None
    }

    /// `record`'s outcome acknowledged, lettered or retried; a retried record
    /// stalls its group.
    async fn settle<'r>(
        &self,
        progress: &mut Progress<'r>,
        record: &'r Record,
        key: Option<&str>,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) {
        let queues = Queues {
            source: self.source,
            dead: self.dead,
        };
        let ids = Ids {
            source: key,
            event_id: None,
            mapping: Some(&self.mapping.version),
        };
        if let Some(retry) = batch::settle(Stage::Enrich, queues, record, ids, outcome, now).await {
            if let Some(g) = record.group_id.as_deref() {
                progress.stalled.entry(g).or_insert(retry.after);
            }
            progress.failed.push(retry);
        }
    }

    /// The waiting jobs' outputs queued in one send, then each job written down;
    /// if the send fails, every one of them is held (what did go out is sent
    /// again with the same ids, which dispatch takes once).
    async fn flush<'r>(&self, progress: &mut Progress<'r>, now: DateTime<Utc>) {
        let pending = std::mem::take(&mut progress.pending);
        if pending.is_empty() {
            return;
        }
        let messages = pending.iter().flat_map(|p| p.messages.iter().cloned());
        let sent = self.dispatch.send_all(messages.collect()).await;
        for job in pending {
            let outcome = match &sent {
                Ok(()) => self.written(&job, now).await,
                Err(e) => {
                    let reason = Reason::of("dispatch_queue_failed", e);
                    let (record, job) = (job.record, &job.job);
                    self.hold(record, job, reason, Duration::ZERO, vec![], now)
                        .await
                }
            };
            self.settle(progress, job.record, Some(job.job.key()), outcome, now)
                .await;
        }
    }

    /// One job enriched from its read: settled, or its outputs ready to be queued.
    async fn enrich_record<'r>(
        &self,
        enricher: &mut Enricher<'_, G, S>,
        record: &'r Record,
        job: EnrichJob,
        read: Option<Result<Read, Enriched>>,
        now: DateTime<Utc>,
    ) -> Step<'r> {
        let outcome = match &job {
            EnrichJob::WriteBack(write) => enricher.write_back(write, record.receives, now).await,
            job => enricher.enrich_read(job, read, now).await,
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
            } => {
                let held = self.hold(record, &job, reason, after, triggers, now).await;
                return Step::Settled(held);
            }
        };
        let events = jobs.iter().map(serde_json::to_string);
        let changes = audience.iter().map(|c| serde_json::to_string(&c.job));
        let messages = events
            .chain(changes)
            .map(|body| body.map(Outgoing::new))
            .collect::<Result<Vec<_>, _>>();
        let messages = match messages {
            Ok(messages) => messages,
            Err(e) => {
                let reason = Reason::of("dispatch_queue_failed", &QueueError::new(e));
                let held = self
                    .hold(record, &job, reason, Duration::ZERO, vec![], now)
                    .await;
                return Step::Settled(held);
            }
        };
        let built = jobs
            .iter()
            .map(|out| self.mapping.metric_name(&out.event.event_name).to_owned())
            .collect();
        Step::Pending(Pending {
            record,
            job,
            messages,
            built,
            dead_letters,
            seen,
            audience,
            records,
        })
    }

    /// A job whose outputs are queued, written down: its letters sent, its
    /// audiences' members, tags and records remembered, the job marked done.
    async fn written(&self, pending: &Pending<'_>, now: DateTime<Utc>) -> Outcome {
        let Pending {
            record, job, built, ..
        } = pending;
        let own = |code: &'static str, e: &dyn std::error::Error| Reason::of(code, e);
        for name in built {
            crate::telemetry::event_built(name);
        }
        for letter in &pending.dead_letters {
            let letter = letter.clone().under(Some(&self.mapping.version));
            if let Err(e) = batch::dead_letter(self.dead, &letter, &record.body, now).await {
                return Outcome::RetryNow(own("dead_letter_queue_failed", &e));
            }
        }
        // Remembered once queued: a job retried after a failed send makes the same
        // changes again, with the same numbers, and dispatch applies each once.
        if let Err(e) = remember_members(self.state, &pending.audience).await {
            let reason = own("state_store_failed", &e);
            return self
                .hold(record, job, reason, Duration::ZERO, vec![], now)
                .await;
        }
        // A job with dead letters stays open, so it can be redriven once its cause is
        // fixed; its delivered events would only repeat their ids, which Meta ignores.
        let done = pending.dead_letters.is_empty().then(|| job.key());
        // The tags last: they may carry the job's mark, which must come after all.
        let remembered = match pending.records.is_empty() {
            true => Ok(()),
            false => {
                self.state
                    .set_records(&pending.records, REMEMBERED_FOR)
                    .await
            }
        };
        let remembered = match (remembered, &pending.seen) {
            (Ok(()), Some(seen)) => remember(self.state, seen, done).await,
            (result, _) => result.map(|()| false),
        };
        let marked = match remembered {
            Ok(marked) => marked,
            Err(e) => {
                let reason = own("state_store_failed", &e);
                return self
                    .hold(record, job, reason, Duration::ZERO, vec![], now)
                    .await;
            }
        };
        if let (Some(key), false) = (done, marked)
            && let Err(e) = self.state.mark_processed(key).await
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
