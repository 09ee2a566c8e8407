//! The dispatch function's batch: events grouped by pixel and delivered in batches
//! of up to 1,000. Events that grew too old while queued are dead-lettered before
//! sending, so they cannot sink a batch. A record is acknowledged only once Meta
//! took its event, or its event is dead-lettered with Meta's reason.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{Delivery, deliver};
use crate::batch::{self, Ids, Outcome, Reason, Retry};
use crate::capi::{EventsApi, ServerEvent, validate};
use crate::jobs::{DeadLetter, DispatchJob, Stage};
use crate::mapping::{Mapping, Pixel};
use crate::ports::queue::{Queue, Record};

/// One pixel and the records whose events go to it.
type PixelBatch<'a> = (&'a Pixel, Vec<(&'a Record, DispatchJob)>);

/// Delivers every record of a batch; the records to retry, each with its reason.
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
            Err(e) => Some((letter("malformed_message", e.to_string(), None), None)),
            Ok(job) => match (
                validate(&job.event, now.timestamp()),
                mapping.pixels.iter().find(|p| p.name == job.pixel),
            ) {
                (Err(why), _) => Some((
                    letter(why.code(), why.to_string(), Some(job.rule.clone())),
                    Some(job),
                )),
                (Ok(()), None) => Some((
                    letter(
                        "unknown_pixel",
                        format!("the mapping has no pixel named {}", job.pixel),
                        Some(job.rule.clone()),
                    ),
                    Some(job),
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
        if let Some((letter, job)) = refusal {
            let ids = ids(job.as_ref());
            let outcome = Outcome::DeadLetter(letter);
            failed.extend(batch::settle(Stage::Dispatch, dead, record, ids, outcome).await);
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
        for ((record, job), delivery) in jobs.iter().zip(outcomes) {
            let outcome = match delivery {
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
                    Outcome::Done
                }
                Delivery::Retry { reason } => {
                    Outcome::RetryNow(Reason::new("meta_unavailable", reason))
                }
                Delivery::TokenProblem { reason } => {
                    // Held, never dropped, until someone fixes the token: say so loudly.
                    tracing::error!(
                        pixel = pixel.name,
                        source = job.source,
                        event_id = job.event.event_id,
                        reason,
                        "the pixel's access token is refused; events are held"
                    );
                    Outcome::RetryNow(Reason::new("meta_token_refused", reason))
                }
                Delivery::DeadLetter { reason } => Outcome::DeadLetter(DeadLetter {
                    source: job.source.clone(),
                    rule: Some(job.rule.clone()),
                    code: "refused_by_meta".into(),
                    reason,
                }),
            };
            let ids = ids(Some(job));
            failed.extend(batch::settle(Stage::Dispatch, dead, record, ids, outcome).await);
        }
        if delivered > 0 {
            crate::telemetry::events_sent(delivered, oldest_lag);
        }
    }
    failed
}

/// A dispatch job's ids, for its log lines.
fn ids(job: Option<&DispatchJob>) -> Ids<'_> {
    Ids {
        source: job.map(|j| j.source.as_str()),
        event_id: job.and_then(|j| j.event.event_id.as_deref()),
    }
}
