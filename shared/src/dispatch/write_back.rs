//! What dispatch hands enrichment to write back into GHL once an event's fate is
//! known ([`crate::jobs::write_back`]): the write of an event Meta took, the task
//! of one lettered. Queued on the enrichment queue, whose stage holds the GHL
//! client and its budget, before the event's record is settled.

use chrono::{DateTime, Utc};

use crate::batch::Outcome;
use crate::capi::score::Coverage;
use crate::error::chain;
use crate::jobs::{DispatchJob, EnrichJob, WriteBackJob};
use crate::ports::queue::{Queue, QueueError};

/// The write-back `job`'s outcome asks for, if its rule writes back.
pub(super) fn after(
    job: &DispatchJob,
    outcome: &Outcome,
    now: DateTime<Utc>,
) -> Option<WriteBackJob> {
    match outcome {
        Outcome::Done => taken(job, now),
        Outcome::DeadLetter(letter) => job.tasked(letter, now),
        _ => None,
    }
}

/// The write-back of `job`'s event, which Meta took (now, or before: a
/// redelivery asks again, and enrichment writes it once).
pub(super) fn taken(job: &DispatchJob, now: DateTime<Utc>) -> Option<WriteBackJob> {
    let score = Coverage::of(&job.event.user_data).score().hundredths();
    job.written_back(score, now)
}

/// Queues `jobs` for enrichment. Without an enrichment queue (a stage set up
/// before write-backs), each is logged and counted as lost.
pub(super) async fn queue<Q: Queue>(
    enrich: Option<&Q>,
    jobs: &[WriteBackJob],
) -> Result<(), QueueError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let Some(enrich) = enrich else {
        lost(jobs, "no enrichment queue is set (ENRICH_QUEUE_URL)");
        return Ok(());
    };
    let messages = jobs
        .iter()
        .map(|job| EnrichJob::WriteBack(job.clone()).outgoing())
        .collect::<Result<Vec<_>, _>>()
        .map_err(QueueError::new)?;
    enrich.send_all(messages).await
}

/// Queues the write-backs of letters: a letter is written once, so one whose
/// write-back cannot be queued is logged and counted, never retried.
pub(super) async fn queue_or_count<Q: Queue>(enrich: Option<&Q>, jobs: &[WriteBackJob]) {
    if let Err(e) = queue(enrich, jobs).await {
        lost(jobs, &chain(&e));
    }
}

/// Logs and counts `jobs` as lost, for `why`.
pub(super) fn lost(jobs: &[WriteBackJob], why: &str) {
    for job in jobs {
        tracing::error!(
            webhook_id = job.source,
            event_id = job.event_id,
            rule = job.rule,
            error = why,
            "the write-back into GHL cannot be queued: it is lost"
        );
        crate::telemetry::written_back("any", "lost");
    }
}
