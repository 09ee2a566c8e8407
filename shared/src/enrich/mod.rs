//! Enrichment: from a queued webhook or conversion to events ready for Meta.
//!
//! Per batch of jobs: each job's occurrences are matched against the mapping; only
//! if a rule fires is anything fetched from GHL, and each contact (and each list of
//! its notes, tasks or appointments) is fetched once however many jobs name it.
//!
//! Failure policy: nothing accepted disappears. An event Meta would refuse, or a
//! contact GHL no longer has (`404`), becomes a dead letter with its reason; GHL
//! rate limits, outages and token trouble make the job retry, with the reason kept
//! (SQS redelivers it, and its redrive policy bounds how often).
//!
//! - this module: one job at a time ([`Enricher`]);
//! - [`fetch`]: GHL reads shared across a batch;
//! - [`consumer`]: the enrichment function's batch.

pub mod consumer;
mod fetch;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Map;

use crate::batch::Reason;
use crate::ghl::webhook::Webhook;
use crate::ghl::{GhlError, GhlReader};
use crate::jobs::{DeadLetter, DispatchJob, EnrichJob};
use crate::mapping::{Mapping, Need, Occurrence};
use crate::ports::state::{StateError, StateStore};
use fetch::Fetched;

/// A contact's tags as a job saw them, to remember once its outputs are queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenTags {
    pub location_id: String,
    pub contact_id: String,
    pub tags: Vec<String>,
}

/// What became of one job.
#[derive(Debug, Clone, PartialEq)]
pub enum Enriched {
    Done {
        dispatch: Vec<DispatchJob>,
        dead_letters: Vec<DeadLetter>,
        /// To write to the state store after the outputs are queued, so a job
        /// retried for a failed send sees the same transition again (and its event
        /// ids deduplicate at Meta).
        seen: Option<SeenTags>,
    },
    /// Try the whole job again later: after `after` when GHL said how long to wait.
    Retry {
        reason: Reason,
        after: Option<Duration>,
    },
}

/// Enriches the jobs of one batch, one at a time (the caller queues each job's
/// outputs and writes its [`SeenTags`] before the next, so two changes to one
/// contact in a batch see each other); GHL reads are shared across the batch.
pub struct Enricher<'a, G> {
    mapping: &'a Mapping,
    fetched: Fetched<'a, G>,
}

impl<G> std::fmt::Debug for Enricher<'_, G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enricher")
            .field("contacts_fetched", &self.fetched.contacts())
            .finish_non_exhaustive()
    }
}

impl<'a, G: GhlReader> Enricher<'a, G> {
    pub fn new(mapping: &'a Mapping, ghl: &'a G) -> Self {
        Enricher {
            mapping,
            fetched: Fetched::new(ghl),
        }
    }

    /// Enriches one job; `state` gives the contact's tags as last remembered.
    pub async fn enrich(
        &mut self,
        state: &impl StateStore,
        job: &EnrichJob,
        now: DateTime<Utc>,
    ) -> Enriched {
        enrich_one(self.mapping, &mut self.fetched, state, job, now).await
    }
}

/// Remembers the tags a job saw; call once its outputs are queued.
pub async fn remember(state: &impl StateStore, seen: &SeenTags) -> Result<(), StateError> {
    state
        .set_tags(&seen.location_id, &seen.contact_id, &seen.tags)
        .await
}

fn retry_state(e: StateError) -> Enriched {
    Enriched::Retry {
        reason: Reason::of("state_store_failed", &e),
        after: None,
    }
}

fn retry_ghl(e: GhlError) -> Enriched {
    let after = match &e {
        GhlError::RateLimited { retry_after_ms } => Some(Duration::from_millis(*retry_after_ms)),
        _ => None,
    };
    Enriched::Retry {
        reason: Reason::of(e.code(), &e),
        after,
    }
}

fn dead(source: &str, rule: Option<&str>, code: &str, reason: impl ToString) -> DeadLetter {
    DeadLetter {
        source: source.to_owned(),
        rule: rule.map(str::to_owned),
        code: code.to_owned(),
        reason: reason.to_string(),
    }
}

async fn enrich_one<G: GhlReader>(
    mapping: &Mapping,
    fetched: &mut Fetched<'_, G>,
    state: &impl StateStore,
    job: &EnrichJob,
    now: DateTime<Utc>,
) -> Enriched {
    let (source, occurrences, carried, seen_tags) = match job {
        EnrichJob::Conversion(job) => (
            job.event_id.clone(),
            vec![Occurrence::for_conversion(
                &job.contact_id,
                &job.conversion,
                now,
            )],
            None,
            None,
        ),
        EnrichJob::Webhook { key, body, .. } => {
            let webhook = match Webhook::parse(body.as_bytes()) {
                Ok(w) => w,
                Err(e) => {
                    return Enriched::Done {
                        dispatch: vec![],
                        dead_letters: vec![dead(key, None, "malformed", e)],
                        seen: None,
                    };
                }
            };
            if let Webhook::AppInstall(e) = &webhook
                && let (Some(location), Some(company)) =
                    (e.envelope.location_id.as_deref(), e.company_id.as_deref())
            {
                return match fetched.ghl().installed(location, company).await {
                    Ok(()) => Enriched::Done {
                        dispatch: vec![],
                        dead_letters: vec![],
                        seen: None,
                    },
                    Err(e) => retry_ghl(e),
                };
            }
            if let Webhook::AppUninstall(e) = &webhook {
                let (location, company) =
                    (e.envelope.location_id.as_deref(), e.company_id.as_deref());
                return match fetched.ghl().uninstalled(location, company).await {
                    Ok(()) => Enriched::Done {
                        dispatch: vec![],
                        dead_letters: vec![],
                        seen: None,
                    },
                    Err(e) => retry_ghl(e),
                };
            }
            let carried = match &webhook {
                Webhook::ContactCreate(e)
                | Webhook::ContactUpdate(e)
                | Webhook::ContactTagUpdate(e) => Some(e.contact.clone()),
                _ => None,
            };
            let location = webhook.location_id().unwrap_or_default();
            let previous = match &carried {
                Some(contact) => match state.tags(location, &contact.id).await {
                    // Never seen and not new: which tag changed is unknowable, so the
                    // current tags become the baseline rather than fake "tag added"s.
                    Ok(None) if !matches!(webhook, Webhook::ContactCreate(_)) => {
                        contact.tags.clone()
                    }
                    Ok(seen) => seen.unwrap_or_default(),
                    Err(e) => return retry_state(e),
                },
                None => Vec::new(),
            };
            let seen = carried.as_ref().map(|c| SeenTags {
                location_id: location.to_owned(),
                contact_id: c.id.clone(),
                tags: c.tags.clone(),
            });

            (
                key.clone(),
                Occurrence::from_webhook(&webhook, &previous, now),
                carried,
                seen,
            )
        }
    };

    let mut dispatch = Vec::new();
    let mut dead_letters = Vec::new();
    for occ in &occurrences {
        let needs = mapping.needs(occ.trigger);
        if mapping.rules_for(occ.trigger).next().is_none() {
            continue;
        }
        let contact = match (&carried, needs.contains(&Need::Attribution)) {
            (Some(contact), false) => Ok(contact.clone()),
            _ => fetched.contact(&occ.location_id, &occ.contact_id).await,
        };
        let contact = match contact {
            Ok(c) => c,
            Err(GhlError::NotFound) => {
                dead_letters.push(dead(
                    &source,
                    None,
                    "contact_not_found",
                    format!("GHL has no contact {}", occ.contact_id),
                ));
                continue;
            }
            Err(e) => return retry_ghl(e),
        };
        let mut related = Map::new();
        for (need, wanted) in needs.iter().filter_map(|n| Some((n, n.related()?))) {
            match fetched
                .related(&occ.location_id, &occ.contact_id, wanted)
                .await
            {
                Ok(list) => {
                    related.insert(need.name().to_owned(), list);
                }
                Err(GhlError::NotFound) => {}
                Err(e) => return retry_ghl(e),
            }
        }
        for mapped in mapping.map(occ, &contact, &related, now) {
            match mapped.outcome {
                Ok(event) if mapped.pixels.is_empty() => dead_letters.push(dead(
                    &source,
                    Some(&mapped.rule),
                    "no_pixel",
                    format!(
                        "no pixel is fed by location {} for this rule (event {})",
                        occ.location_id, event.event_name
                    ),
                )),
                Ok(event) => dispatch.extend(mapped.pixels.iter().map(|pixel| DispatchJob {
                    pixel: pixel.clone(),
                    source: source.clone(),
                    rule: mapped.rule.clone(),
                    event: event.clone(),
                })),
                Err(why) => dead_letters.push(dead(&source, Some(&mapped.rule), why.code(), why)),
            }
        }
    }
    Enriched::Done {
        dispatch,
        dead_letters,
        seen: seen_tags,
    }
}
