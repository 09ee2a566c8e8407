//! The batch logic of the two SQS-driven functions. Each takes the batch's records
//! and returns those to retry (SQS's `ReportBatchItemFailures`), with how long to
//! wait when that is known; every record is parsed on its own, so one bad message
//! never fails its neighbours.
//!
//! Nothing is dropped: a record is acknowledged only once everything it produced is
//! queued (dispatch jobs, dead letters) or delivered; anything that cannot be
//! delivered, ever, is dead-lettered with its reason.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use crate::capi::{ServerEvent, validate};
use crate::dispatch::{Delivery, EventsApi, deliver};
use crate::enrich::{DeadLetter, DispatchJob, Enriched, Enricher, GhlReader, StateStore, remember};
use crate::intake::EnrichJob;
use crate::mapping::{Mapping, Pixel};
use crate::queue::{Outgoing, Queue};

/// One SQS record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub message_id: String,
    pub body: String,
    /// FIFO group, when the queue is FIFO.
    pub group_id: Option<String>,
}

/// A record to receive again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    pub message_id: String,
    /// Not before this long (a GHL rate limit); `None`: when the queue redelivers.
    pub after: Option<Duration>,
}

impl Retry {
    fn now(record: &Record) -> Self {
        Retry {
            message_id: record.message_id.clone(),
            after: None,
        }
    }
}

async fn send_json(queue: &impl Queue, value: &impl Serialize) -> bool {
    match serde_json::to_string(value) {
        Ok(body) => queue
            .send(Outgoing {
                body,
                group_id: None,
                dedup_id: None,
            })
            .await
            .is_ok(),
        Err(_) => false,
    }
}

/// A dead letter as queued: the reason, and the message it is about (for redrive).
async fn dead_letter(dead: &impl Queue, letter: &DeadLetter, message: &str) -> bool {
    // The audit line of a dropped event: ids and reason, never the payload.
    tracing::warn!(
        code = letter.code,
        source = letter.source,
        rule = letter.rule,
        reason = letter.reason,
        "dead letter"
    );
    let queued = send_json(dead, &json!({"deadLetter": letter, "message": message})).await;
    if queued {
        crate::telemetry::dead_lettered(&letter.code);
    }
    queued
}

/// The enrichment function: jobs in, dispatch jobs and dead letters out. On a FIFO
/// queue, once a record of a group fails, the group's later records are retried
/// without being processed, so one contact's changes keep their order.
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
        let outcome = match group {
            Some(g) if stalled.contains(g) => Err(None),
            _ => enrich_record(&mut enricher, state, dispatch, dead, record, now).await,
        };
        if let Err(after) = outcome {
            failed.push(Retry {
                message_id: record.message_id.clone(),
                after,
            });
            if let Some(g) = group {
                stalled.insert(g);
            }
        }
    }
    failed
}

/// `Ok` when the record is done with; `Err` with how long to wait before retrying.
type Outcome = Result<(), Option<Duration>>;

fn sent(ok: bool) -> Outcome {
    if ok { Ok(()) } else { Err(None) }
}

async fn enrich_record<G: GhlReader>(
    enricher: &mut Enricher<'_, G>,
    state: &impl StateStore,
    dispatch: &impl Queue,
    dead: &impl Queue,
    record: &Record,
    now: DateTime<Utc>,
) -> Outcome {
    let job: EnrichJob = match serde_json::from_str(&record.body) {
        Ok(job) => job,
        Err(e) => {
            let letter = DeadLetter {
                source: record.message_id.clone(),
                rule: None,
                code: "malformed_message".into(),
                reason: e.to_string(),
            };
            return sent(dead_letter(dead, &letter, &record.body).await);
        }
    };
    // A job done before (redelivered after SQS's deduplication window) is skipped.
    if state.processed(job.key()).await.map_err(|_| None)? {
        return Ok(());
    }
    let (jobs, dead_letters, seen) = match enricher.enrich(state, &job, now).await {
        Enriched::Done {
            dispatch,
            dead_letters,
            seen,
        } => (dispatch, dead_letters, seen),
        Enriched::Retry { after, .. } => return Err(after),
    };
    for job in &jobs {
        sent(send_json(dispatch, job).await)?;
        crate::telemetry::event_built(&job.event.event_name);
    }
    for letter in &dead_letters {
        sent(dead_letter(dead, letter, &record.body).await)?;
    }
    if let Some(seen) = &seen {
        remember(state, seen).await.map_err(|_| None)?;
    }
    // A job with dead letters stays open, so it can be redriven once its cause is
    // fixed; its delivered events would only repeat their ids, which Meta ignores.
    if dead_letters.is_empty() {
        state.mark_processed(job.key()).await.map_err(|_| None)?;
    }
    Ok(())
}

/// One pixel and the records whose events go to it.
type PixelBatch<'a> = (&'a Pixel, Vec<(&'a Record, DispatchJob)>);

/// The dispatch function: events grouped by pixel and delivered in batches of up to
/// 1,000. Events that grew too old while queued are dead-lettered before sending, so
/// they cannot sink a batch.
pub async fn dispatch_records(
    mapping: &Mapping,
    api: &impl EventsApi,
    dead: &impl Queue,
    records: &[Record],
    now: DateTime<Utc>,
) -> Vec<Retry> {
    let mut failed = Vec::new();
    // Events per pixel, with the pixel found once, when the record is read.
    let mut by_pixel: BTreeMap<&str, PixelBatch<'_>> = BTreeMap::new();
    for record in records {
        let letter = |code: &str, reason: String, rule: Option<String>| DeadLetter {
            source: record.message_id.clone(),
            rule,
            code: code.into(),
            reason,
        };
        let refusal = match serde_json::from_str::<DispatchJob>(&record.body) {
            Err(e) => Some(letter("malformed_message", e.to_string(), None)),
            Ok(job) => match (
                validate(&job.event, now.timestamp()),
                mapping.pixels.iter().find(|p| p.name == job.pixel),
            ) {
                (Err(why), _) => Some(letter(why.code(), why.to_string(), Some(job.rule.clone()))),
                (Ok(()), None) => Some(letter(
                    "unknown_pixel",
                    format!("the mapping has no pixel named {}", job.pixel),
                    Some(job.rule.clone()),
                )),
                (Ok(()), Some(pixel)) => {
                    by_pixel
                        .entry(&pixel.name)
                        .or_insert_with(|| (pixel, Vec::new()))
                        .1
                        .push((record, job));
                    None
                }
            },
        };
        if let Some(letter) = refusal
            && !dead_letter(dead, &letter, &record.body).await
        {
            failed.push(Retry::now(record));
        }
    }
    for (pixel, jobs) in by_pixel.into_values() {
        let events: Vec<ServerEvent> = jobs.iter().map(|(_, job)| job.event.clone()).collect();
        let outcomes = deliver(
            api,
            &pixel.dataset_id,
            pixel.test_event_code.as_deref(),
            &events,
        )
        .await;
        let (mut delivered, mut oldest_lag) = (0, 0);
        for ((record, job), outcome) in jobs.iter().zip(outcomes) {
            let done = match outcome {
                Delivery::Delivered { fbtrace_id } => {
                    // From the change in GHL to Meta's acknowledgement.
                    let lag_seconds = (now.timestamp() - job.event.event_time).max(0);
                    delivered += 1;
                    oldest_lag = oldest_lag.max(lag_seconds);
                    // The audit line: webhook (source) → event id → Meta's trace id.
                    tracing::info!(
                        pixel = pixel.name,
                        event_id = job.event.event_id,
                        source = job.source,
                        rule = job.rule,
                        fbtrace_id,
                        lag_seconds,
                        "event sent"
                    );
                    true
                }
                Delivery::Retry { reason } => {
                    tracing::warn!(pixel = pixel.name, source = job.source, reason, "retry");
                    false
                }
                Delivery::TokenProblem { reason } => {
                    // Held, never dropped, until someone fixes the token: say so loudly.
                    tracing::error!(
                        pixel = pixel.name,
                        source = job.source,
                        reason,
                        "the pixel's access token is refused; events are held"
                    );
                    false
                }
                Delivery::DeadLetter { reason } => {
                    let letter = DeadLetter {
                        source: job.source.clone(),
                        rule: Some(job.rule.clone()),
                        code: "refused_by_meta".into(),
                        reason,
                    };
                    dead_letter(dead, &letter, &record.body).await
                }
            };
            if !done {
                failed.push(Retry::now(record));
            }
        }
        if delivered > 0 {
            crate::telemetry::events_sent(delivered, oldest_lag);
        }
    }
    failed
}
