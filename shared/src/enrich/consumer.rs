//! The enrichment function's batch: jobs in, dispatch jobs and dead letters out.
//!
//! A record is acknowledged only once everything it produced is queued; anything
//! that can never reach Meta is dead-lettered with its reason. On a FIFO queue, once
//! a record of a group fails, the group's later records are retried without being
//! handled, so one contact's changes keep their order.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::{Enriched, Enricher, remember};
use crate::batch::{self, Ids, Outcome, Reason, Retry, send_json};
use crate::ghl::GhlReader;
use crate::jobs::{DeadLetter, EnrichJob, Stage};
use crate::mapping::Mapping;
use crate::ports::queue::{Queue, Record};
use crate::ports::state::StateStore;

/// Enriches every record of a batch; the records to retry, each with its reason.
pub async fn enrich_records(
    mapping: &Mapping,
    ghl: &impl GhlReader,
    state: &impl StateStore,
    dispatch: &impl Queue,
    dead: &impl Queue,
    records: &[Record],
    now: DateTime<Utc>,
) -> Vec<Retry> {
    let mut enricher = Enricher::new(mapping, ghl);
    let mut failed = Vec::new();
    let mut stalled: HashSet<&str> = HashSet::new();
    for record in records {
        let group = record.group_id.as_deref();
        let job = serde_json::from_str::<EnrichJob>(&record.body);
        let key = job.as_ref().ok().map(EnrichJob::key);
        let outcome = match (group, &job) {
            (Some(g), _) if stalled.contains(g) => Outcome::RetryNow(Reason::new(
                "waiting_for_earlier_change",
                "an earlier change of this contact is being retried",
            )),
            (_, Err(e)) => Outcome::DeadLetter(DeadLetter {
                source: record.message_id.clone(),
                rule: None,
                code: "malformed_message".into(),
                reason: e.to_string(),
            }),
            (_, Ok(job)) => {
                let queues = (dispatch, dead);
                enrich_record(&mut enricher, state, queues, record, job, now).await
            }
        };
        let ids = Ids {
            source: key,
            event_id: None,
        };
        if let Some(retry) = batch::settle(Stage::Enrich, dead, record, ids, outcome).await {
            failed.push(retry);
            if let Some(g) = group {
                stalled.insert(g);
            }
        }
    }
    failed
}

/// One job: its dispatch jobs and dead letters queued, its tags remembered.
async fn enrich_record<G: GhlReader>(
    enricher: &mut Enricher<'_, G>,
    state: &impl StateStore,
    (dispatch, dead): (&impl Queue, &impl Queue),
    record: &Record,
    job: &EnrichJob,
    now: DateTime<Utc>,
) -> Outcome {
    let retry_state = |e| Outcome::RetryNow(Reason::of("state_store_failed", &e));
    // A job done before (redelivered after SQS's deduplication window) is skipped.
    match state.processed(job.key()).await {
        Ok(true) => return Outcome::Done,
        Ok(false) => {}
        Err(e) => return retry_state(e),
    }
    let (jobs, dead_letters, seen) = match enricher.enrich(state, job, now).await {
        Enriched::Done {
            dispatch,
            dead_letters,
            seen,
        } => (dispatch, dead_letters, seen),
        Enriched::Retry {
            reason,
            after: Some(after),
        } => return Outcome::RetryAfter(after, reason),
        Enriched::Retry {
            reason,
            after: None,
        } => return Outcome::RetryNow(reason),
    };
    for job in &jobs {
        if let Err(e) = send_json(dispatch, job).await {
            return Outcome::RetryNow(Reason::of("dispatch_queue_failed", &e));
        }
        crate::telemetry::event_built(&job.event.event_name);
    }
    for letter in &dead_letters {
        if let Err(e) = batch::dead_letter(dead, letter, &record.body).await {
            return Outcome::RetryNow(Reason::of("dead_letter_queue_failed", &e));
        }
    }
    if let Some(seen) = &seen
        && let Err(e) = remember(state, seen).await
    {
        return retry_state(e);
    }
    // A job with dead letters stays open, so it can be redriven once its cause is
    // fixed; its delivered events would only repeat their ids, which Meta ignores.
    if dead_letters.is_empty()
        && let Err(e) = state.mark_processed(job.key()).await
    {
        return retry_state(e);
    }
    Outcome::Done
}
