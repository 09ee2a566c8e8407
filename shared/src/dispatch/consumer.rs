//! The dispatch function's batch: events grouped by pixel and delivered in batches
//! of up to 1,000. Events that grew too old while queued are dead-lettered before
//! sending, so they cannot sink a batch. A record is acknowledged once Meta took its
//! event, once its event is dead-lettered with Meta's reason, or once it is queued
//! again, with its history, to wait out Meta's trouble ([`crate::hold`]); while a
//! pixel's breaker is open, its events wait without a request to Meta.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::sent::{SentMarks, event_key, reused, same_event, sent_key};
use super::{Delivery, deliver_telling, write_back};
use crate::batch::{self, Ids, Outcome, Queues, Reason, Retry};
use crate::capi::{AudiencesApi, EventsApi, ServerEvent, validate};
use crate::error::chain;
use crate::hold::breaker::{Breakers, Gate};
use crate::hold::{HoldPolicy, Partner, code};
use crate::jobs::{After, DeadLetter, DispatchJob, DispatchMessage, Stage, WriteBackJob};
use crate::mapping::{Mapping, Pixel};
use crate::ports::queue::{Queue, Record};
use crate::ports::state::StateStore;
use crate::quality;

/// The dispatch stage over its ports.
#[derive(Debug)]
pub struct DispatchConsumer<'a, A, S, Q> {
    pub mapping: &'a Mapping,
    pub capi: &'a A,
    /// Where the pixels' breakers are kept.
    pub state: &'a S,
    /// The dispatch queue itself: held jobs go back on it.
    pub source: &'a Q,
    pub dead: &'a Q,
    /// The enrichment queue, for write-backs into GHL (`None`: none are made).
    pub enrich: Option<&'a Q>,
    pub policy: HoldPolicy,
}

/// One pixel and the records whose events go to it.
type PixelBatch<'a> = (&'a Pixel, Vec<(&'a Record, DispatchJob)>);

/// A pixel's jobs sorted before sending ([`DispatchConsumer::unsent`]).
struct Sorted<'j> {
    unsent: Vec<(&'j Record, DispatchJob)>,
    /// Jobs whose event name and id another owner's event holds, with their letter.
    reused: Vec<(&'j Record, DispatchJob, DeadLetter)>,
    /// Jobs whose event Meta took before.
    taken: Vec<DispatchJob>,
}

/// A dispatch job's ids, for its log lines.
fn ids(job: Option<&DispatchJob>) -> Ids<'_> {
    Ids {
        source: job.map(|j| j.source.as_str()),
        event_id: job.and_then(|j| j.event.event_id.as_deref()),
        mapping: job.map(|j| j.mapping.as_str()),
    }
}

/// A letter about `job`'s event.
pub(super) fn letter(job: &DispatchJob, code: &str, reason: String) -> DeadLetter {
    let mut letter = DeadLetter::new(&job.source, Stage::Dispatch, code, reason);
    letter.rule = Some(job.rule.clone());
    letter.event_id = job.event.event_id.clone();
    letter.triggers = std::iter::once(job.trigger.clone())
        .filter(|t| !t.is_empty())
        .collect();
    letter.history = job.history.clone();
    letter.under(Some(&job.mapping))
}

impl<A: EventsApi + AudiencesApi, S: StateStore, Q: Queue> DispatchConsumer<'_, A, S, Q> {
    /// Delivers every record of a batch; the records to retry in place (those whose
    /// requeue or letter could not be written), each with its reason.
    pub async fn handle(&self, records: &[Record], now: DateTime<Utc>) -> Vec<Retry> {
        let queues = Queues {
            source: self.source,
            dead: self.dead,
        };
        let mut failed = Vec::new();
        let mut by_pixel: BTreeMap<&str, PixelBatch<'_>> = BTreeMap::new();
        let mut changes = Vec::new();
        for record in records {
            let job = match DispatchMessage::parse(&record.body) {
                Ok(DispatchMessage::Event(job)) => *job,
                Ok(DispatchMessage::Audience(change)) => {
                    changes.push((record, *change));
                    continue;
                }
                Err(e) => {
                    let mut malformed = DeadLetter::new(
                        &record.message_id,
                        Stage::Dispatch,
                        "malformed_message",
                        crate::ghl::webhook::FieldError::of("", &e).to_string(),
                    );
                    malformed.at = Some(now);
                    let outcome = Outcome::DeadLetter(malformed);
                    failed.extend(
                        batch::settle(Stage::Dispatch, queues, record, ids(None), outcome, now)
                            .await,
                    );
                    continue;
                }
            };
            let pixel = self.mapping.pixels.iter().find(|p| p.name == job.pixel);
            let refusal = match (validate(&job.event, now.timestamp()), pixel) {
                (Err(why), _) => letter(&job, why.code(), why.to_string()),
                (Ok(()), None) => letter(
                    &job,
                    "unknown_pixel",
                    format!("the mapping has no pixel named {}", job.pixel),
                ),
                (Ok(()), Some(pixel)) => {
                    by_pixel
                        .entry(&pixel.name)
                        .or_insert_with(|| (pixel, Vec::new()))
                        .1
                        .push((record, job));
                    continue;
                }
            };
            let outcome = Outcome::DeadLetter(refusal);
            let follow: Vec<_> = write_back::after(&job, &outcome, now).into_iter().collect();
            write_back::queue_or_count(self.enrich, &follow).await;
            let ids = ids(Some(&job));
            failed.extend(batch::settle(Stage::Dispatch, queues, record, ids, outcome, now).await);
        }
        let mut breakers = Breakers::new(self.state, self.policy, Partner::Meta);
        for (pixel, jobs) in by_pixel.into_values() {
            let Sorted {
                unsent: jobs,
                reused,
                taken,
            } = self.unsent(pixel, jobs).await;
            let lettered: Vec<_> = (reused.iter())
                .filter_map(|(_, job, letter)| job.tasked(letter, now))
                .collect();
            write_back::queue_or_count(self.enrich, &lettered).await;
            for (record, _, letter) in reused {
                let ids = Ids {
                    source: Some(&letter.source),
                    event_id: letter.event_id.as_deref(),
                    mapping: letter.mapping.as_deref(),
                };
                let outcome = Outcome::DeadLetter(letter.clone());
                failed.extend(
                    batch::settle(Stage::Dispatch, queues, record, ids, outcome, now).await,
                );
            }
            let mut outcomes = self.pixel(&mut breakers, pixel, &jobs, now).await;
            // Each request's events were marked as Meta took them.
            Self::count_sent(&jobs, &outcomes, now);
            self.tally(pixel, &jobs, &outcomes, now).await;
            self.follow_up(&jobs, &mut outcomes, taken, now).await;
            for ((record, job), outcome) in jobs.iter().zip(outcomes) {
                failed.extend(
                    batch::settle(
                        Stage::Dispatch,
                        queues,
                        record,
                        ids(Some(job)),
                        outcome,
                        now,
                    )
                    .await,
                );
            }
        }
        for (record, change, outcome) in self.audiences(changes, now).await {
            let ids = Ids {
                source: Some(&change.source),
                event_id: None,
                mapping: Some(&self.mapping.version),
            };
            failed.extend(batch::settle(Stage::Dispatch, queues, record, ids, outcome, now).await);
        }
        failed
    }

    /// Counts the events of `jobs` Meta took, with the oldest one's lag from the
    /// change in GHL.
    fn count_sent(jobs: &[(&Record, DispatchJob)], outcomes: &[Outcome], now: DateTime<Utc>) {
        let lags: Vec<i64> = jobs
            .iter()
            .zip(outcomes)
            .filter(|(_, outcome)| **outcome == Outcome::Done)
            .map(|((_, job), _)| (now.timestamp() - job.event.event_time).max(0))
            .collect();
        if let Some(oldest) = lags.iter().max() {
            crate::telemetry::events_sent(lags.len() as u64, *oldest);
        }
    }

    /// Counts the events of `jobs` Meta took ([`quality::tally`]).
    async fn tally(
        &self,
        pixel: &Pixel,
        jobs: &[(&Record, DispatchJob)],
        outcomes: &[Outcome],
        now: DateTime<Utc>,
    ) {
        let sent: Vec<&DispatchJob> = jobs
            .iter()
            .zip(outcomes)
            .filter(|(_, outcome)| **outcome == Outcome::Done)
            .map(|((_, job), _)| job)
            .collect();
        quality::tally(self.state, pixel, &sent, now).await;
    }

    /// `jobs` less those whose event Meta already took or this batch carries already
    /// (SQS may deliver a job twice, even in one batch; an enrichment retried after
    /// its jobs were queued queues them again): those are done, and not sent again;
    /// and less those whose name and id are another owner's event's: those are
    /// lettered (Meta would drop them as repeats). If the marks cannot be read,
    /// only this batch's copies are told apart (Meta drops a repeat by its id).
    async fn unsent<'j>(&self, pixel: &Pixel, jobs: Vec<(&'j Record, DispatchJob)>) -> Sorted<'j> {
        let keys: Vec<String> = jobs
            .iter()
            .filter_map(|(_, job)| sent_key(pixel, &job.event))
            .collect();
        let taken = self.state.records_of(&keys).await.unwrap_or_else(|e| {
            tracing::warn!(pixel = pixel.name, error = %chain(&e), "cannot read which events were sent; sending all");
            Default::default()
        });
        let mut unsent: Vec<(&Record, DispatchJob)> = Vec::with_capacity(jobs.len());
        let (mut reused_ids, mut sent_before) = (Vec::new(), Vec::new());
        for (record, job) in jobs {
            // Meta's mark first: the owner Meta took the event for holds it.
            let holder = sent_key(pixel, &job.event)
                .and_then(|k| taken.get(&k).cloned())
                .or_else(|| {
                    let first = unsent
                        .iter()
                        .find(|(_, j)| same_event(&j.event, &job.event));
                    first.map(|(_, j)| j.owner())
                });
            match holder.as_deref() {
                None => unsent.push((record, job)),
                // Marks of older builds name no owner: the event is taken as this one.
                Some(owner) if owner.is_empty() || owner == job.owner() => {
                    tracing::info!(
                        message_id = record.message_id,
                        source = job.source,
                        event_id = job.event.event_id,
                        pixel = pixel.name,
                        "this event is sent already, or in this batch: sent once"
                    );
                    sent_before.push(job);
                }
                Some(owner) => {
                    let letter = reused(&job, pixel, owner);
                    reused_ids.push((record, job, letter));
                }
            }
        }
        Sorted {
            unsent,
            reused: reused_ids,
            taken: sent_before,
        }
    }

    /// Queues the write-backs of `jobs`' outcomes, and of `taken`, jobs whose
    /// event Meta took before (a redelivery: enrichment writes each once). If
    /// they cannot be queued, the records of events Meta took come again (and
    /// are found sent); the others' write-backs are logged and counted as lost.
    async fn follow_up(
        &self,
        jobs: &[(&Record, DispatchJob)],
        outcomes: &mut [Outcome],
        taken: Vec<DispatchJob>,
        now: DateTime<Utc>,
    ) {
        let after = jobs.iter().zip(outcomes.iter());
        let follow: Vec<WriteBackJob> = (after
            .filter_map(|((_, job), o)| write_back::after(job, o, now)))
        .chain(taken.iter().filter_map(|job| write_back::taken(job, now)))
        .collect();
        let Err(e) = write_back::queue(self.enrich, &follow).await else {
            return;
        };
        let reason = Reason::of("enrich_queue_failed", &e);
        for ((_, job), outcome) in jobs.iter().zip(outcomes.iter_mut()) {
            if *outcome == Outcome::Done && job.write_back.as_ref().is_some_and(|w| w.on_sent()) {
                *outcome = Outcome::RetryNow(reason.clone());
            }
        }
        // Those of this request's events come again with their records.
        let retried = |w: &&WriteBackJob| {
            matches!(w.after, After::Sent { .. })
                && jobs.iter().any(|(_, j)| {
                    j.source == w.source && j.event.event_id.as_deref() == Some(&w.event_id)
                })
        };
        let lost: Vec<WriteBackJob> = follow.iter().filter(|w| !retried(w)).cloned().collect();
        write_back::lost(&lost, &chain(&e));
    }

    /// The outcome of each of one pixel's jobs: sent, unless its breaker holds
    /// them all.
    async fn pixel(
        &self,
        breakers: &mut Breakers<'_, S>,
        pixel: &Pixel,
        jobs: &[(&Record, DispatchJob)],
        now: DateTime<Utc>,
    ) -> Vec<Outcome> {
        if let Gate::Paused { until, code, cause } = breakers.gate(&pixel.name, now).await {
            let reason = Reason::new(
                code,
                format!("Meta is paused for pixel {}: {cause}", pixel.name),
            );
            let wait = (until - now).to_std().unwrap_or_default();
            return jobs
                .iter()
                .map(|(_, job)| self.hold(job, reason.clone(), wait, now))
                .collect();
        }
        let events: Vec<ServerEvent> = jobs.iter().map(|(_, job)| job.event.clone()).collect();
        let deliveries = deliver_telling(
            self.capi,
            &pixel.dataset_id,
            pixel.test_event_code.as_deref(),
            &events,
            &SentMarks {
                state: self.state,
                pixel,
                jobs,
            },
        )
        .await;
        let sent = deliveries
            .iter()
            .any(|d| matches!(d, Delivery::Delivered { .. }));
        let trouble = deliveries.iter().find_map(|d| match d {
            Delivery::Retry { reason } => Some((code::META_UNAVAILABLE, reason)),
            Delivery::Condemned { reason } => Some((code::META_REQUEST_REFUSED, reason)),
            _ => None,
        });
        match (sent, trouble) {
            (true, _) => breakers.succeeded(&pixel.name, now).await,
            (false, Some((code, reason))) => {
                if code == code::META_REQUEST_REFUSED {
                    // The token may be fixed already: read again before the next try.
                    self.capi.token_refused(&pixel.dataset_id);
                }
                breakers.failed(&pixel.name, code, reason, now).await;
            }
            (false, None) => {}
        }
        jobs.iter()
            .zip(deliveries)
            .map(|((_, job), delivery)| match delivery {
                Delivery::Delivered {
                    fbtrace_id,
                    events_received,
                } => {
                    // The audit line: webhook (source) → event id → Meta's trace id.
                    tracing::info!(
                        pixel = pixel.name,
                        event_id = job.event.event_id,
                        source = job.source,
                        rule = job.rule,
                        fbtrace_id,
                        events_received,
                        lag_seconds = (now.timestamp() - job.event.event_time).max(0),
                        "event sent"
                    );
                    Outcome::Done
                }
                Delivery::Retry { reason } => self.hold(
                    job,
                    Reason::new(code::META_UNAVAILABLE, reason),
                    Duration::ZERO,
                    now,
                ),
                Delivery::Condemned { reason } => self.hold(
                    job,
                    Reason::new(code::META_REQUEST_REFUSED, reason),
                    Duration::ZERO,
                    now,
                ),
                Delivery::Undecided => self.hold(
                    job,
                    Reason::new(
                        code::META_BATCH_UNSORTED,
                        "Meta refused its batch for invalid events, and isolating them took \
                         all the requests a batch may spend: it goes in a later batch",
                    ),
                    Duration::ZERO,
                    now,
                ),
                Delivery::DeadLetter { reason } => {
                    Outcome::DeadLetter(letter(job, "refused_by_meta", reason))
                }
            })
            .collect()
    }

    /// Meta could not take `job` now: it goes back on the queue with its history,
    /// to wait (at least `at_least`), or becomes a letter once held as long as the
    /// failure allows.
    fn hold(
        &self,
        job: &DispatchJob,
        reason: Reason,
        at_least: Duration,
        now: DateTime<Utc>,
    ) -> Outcome {
        let mut held = job.clone();
        held.history.failed(reason.code, &reason.text, now);
        batch::hold_or_letter(
            &self.policy,
            &held,
            event_key(job),
            at_least,
            reason,
            now,
            |code, why| letter(&held, code, why),
        )
    }
}
