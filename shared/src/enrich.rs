//! Enrichment: from a queued webhook or conversion to events ready for Meta.
//!
//! Per batch of jobs: each job's occurrences are matched against the mapping; only
//! if a rule fires is anything fetched from GHL, and each contact (and each list of
//! its notes, tasks or appointments) is fetched once however many jobs name it.
//!
//! Failure policy: nothing accepted disappears. An event Meta would refuse, or a
//! contact GHL no longer has (`404`), becomes a dead letter with its reason; GHL
//! rate limits, outages and token trouble make the job retry (SQS redelivers it, and
//! its redrive policy bounds how often).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::capi::ServerEvent;
use crate::ghl::Contact;
use crate::ghl::webhook::Webhook;
use crate::intake::EnrichJob;
use crate::mapping::{Mapping, Need, Occurrence};

/// Why GHL could not give what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GhlError {
    #[error("GHL has no such record")]
    NotFound,
    #[error("GHL rate limit reached; retry in {retry_after_ms} ms")]
    RateLimited { retry_after_ms: u64 },
    #[error("GHL refused the token")]
    Unauthorized,
    #[error("GHL refused the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("GHL request failed: {0}")]
    Unavailable(String),
}

/// The GHL reads enrichment needs (the Contacts API client is the real adapter).
pub trait GhlReader: Send + Sync {
    /// `GET /contacts/{id}`.
    fn contact(
        &self,
        location_id: &str,
        contact_id: &str,
    ) -> impl Future<Output = Result<Contact, GhlError>> + Send;
    /// The contact's notes, tasks or appointments, as GHL lists them.
    fn related(
        &self,
        location_id: &str,
        contact_id: &str,
        need: Need,
    ) -> impl Future<Output = Result<Value, GhlError>> + Send;
    /// The app was installed on a location of a company (an agency install reaching
    /// a new location): the location's token can be minted from the company's.
    /// Readers without tokens of their own have nothing to record.
    fn installed(
        &self,
        location_id: &str,
        company_id: &str,
    ) -> impl Future<Output = Result<(), GhlError>> + Send {
        let _ = (location_id, company_id);
        async { Ok(()) }
    }
    /// The app was uninstalled from a location or a company: its tokens are retired.
    /// Readers without tokens of their own have nothing to retire.
    fn uninstalled(
        &self,
        location_id: Option<&str>,
        company_id: Option<&str>,
    ) -> impl Future<Output = Result<(), GhlError>> + Send {
        let _ = (location_id, company_id);
        async { Ok(()) }
    }
}

/// A state store failure; the job is retried.
#[derive(Debug, thiserror::Error)]
#[error("state store failed: {0}")]
pub struct StateError(pub String);

/// What enrichment remembers: per contact, the tags last seen; per job, that it was
/// done (beyond SQS's 5-minute deduplication window).
pub trait StateStore: Send + Sync {
    fn tags(
        &self,
        location_id: &str,
        contact_id: &str,
    ) -> impl Future<Output = Result<Option<Vec<String>>, StateError>> + Send;
    fn set_tags(
        &self,
        location_id: &str,
        contact_id: &str,
        tags: &[String],
    ) -> impl Future<Output = Result<(), StateError>> + Send;
    /// Whether the job with this idempotency key was done already.
    fn processed(&self, key: &str) -> impl Future<Output = Result<bool, StateError>> + Send;
    /// Records that the job with this key is done (kept for a week at least).
    fn mark_processed(&self, key: &str) -> impl Future<Output = Result<(), StateError>> + Send;
}

/// A state store in memory: for tests, and the seed of local mode's.
#[derive(Debug, Default)]
pub struct MemoryState {
    tags: std::sync::Mutex<HashMap<(String, String), Vec<String>>>,
    processed: std::sync::Mutex<HashSet<String>>,
}

fn poisoned<T>(_: T) -> StateError {
    StateError("poisoned".into())
}

impl StateStore for MemoryState {
    async fn tags(
        &self,
        location_id: &str,
        contact_id: &str,
    ) -> Result<Option<Vec<String>>, StateError> {
        let map = self.tags.lock().map_err(poisoned)?;
        Ok(map
            .get(&(location_id.to_owned(), contact_id.to_owned()))
            .cloned())
    }

    async fn set_tags(
        &self,
        location_id: &str,
        contact_id: &str,
        tags: &[String],
    ) -> Result<(), StateError> {
        let mut map = self.tags.lock().map_err(poisoned)?;
        map.insert(
            (location_id.to_owned(), contact_id.to_owned()),
            tags.to_vec(),
        );
        Ok(())
    }

    async fn processed(&self, key: &str) -> Result<bool, StateError> {
        Ok(self.processed.lock().map_err(poisoned)?.contains(key))
    }

    async fn mark_processed(&self, key: &str) -> Result<(), StateError> {
        self.processed
            .lock()
            .map_err(poisoned)?
            .insert(key.to_owned());
        Ok(())
    }
}

/// One event for one pixel, as queued for dispatch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DispatchJob {
    /// The pixel's name in the mapping.
    pub pixel: String,
    /// The job it came from (its idempotency key), for tracing.
    pub source: String,
    pub rule: String,
    pub event: ServerEvent,
}

/// Something that will not reach Meta, with why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub source: String,
    pub rule: Option<String>,
    /// Stable code (`too_old`, `contact_not_found`, …).
    pub code: String,
    pub reason: String,
}

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
        reason: String,
        after: Option<Duration>,
    },
}

/// Reads fetched once per batch.
struct Fetched<'g, G> {
    ghl: &'g G,
    contacts: HashMap<(String, String), Result<Contact, GhlError>>,
    related: HashMap<(String, String, Need), Result<Value, GhlError>>,
}

impl<G: GhlReader> Fetched<'_, G> {
    async fn contact(&mut self, location: &str, contact: &str) -> Result<Contact, GhlError> {
        let key = (location.to_owned(), contact.to_owned());
        if !self.contacts.contains_key(&key) {
            let fetched = self.ghl.contact(location, contact).await;
            self.contacts.insert(key.clone(), fetched);
        }
        self.contacts
            .get(&key)
            .cloned()
            .unwrap_or(Err(GhlError::NotFound))
    }

    async fn related(
        &mut self,
        location: &str,
        contact: &str,
        need: Need,
    ) -> Result<Value, GhlError> {
        let key = (location.to_owned(), contact.to_owned(), need);
        if !self.related.contains_key(&key) {
            let fetched = self.ghl.related(location, contact, need).await;
            self.related.insert(key.clone(), fetched);
        }
        self.related
            .get(&key)
            .cloned()
            .unwrap_or(Err(GhlError::NotFound))
    }
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
            .field("contacts_fetched", &self.fetched.contacts.len())
            .finish_non_exhaustive()
    }
}

impl<'a, G: GhlReader> Enricher<'a, G> {
    pub fn new(mapping: &'a Mapping, ghl: &'a G) -> Self {
        let fetched = Fetched {
            ghl,
            contacts: HashMap::new(),
            related: HashMap::new(),
        };
        Enricher { mapping, fetched }
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

fn retry(reason: impl ToString) -> Enriched {
    Enriched::Retry {
        reason: reason.to_string(),
        after: None,
    }
}

fn retry_ghl(e: GhlError) -> Enriched {
    let after = match &e {
        GhlError::RateLimited { retry_after_ms } => Some(Duration::from_millis(*retry_after_ms)),
        _ => None,
    };
    Enriched::Retry {
        reason: e.to_string(),
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
        EnrichJob::Conversion {
            conversion,
            contact_id,
            ..
        } => {
            let source = conversion.event_id.clone().unwrap_or_default();
            (
                source,
                vec![Occurrence::for_conversion(contact_id, conversion, now)],
                None,
                None,
            )
        }
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
                return match fetched.ghl.installed(location, company).await {
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
                return match fetched.ghl.uninstalled(location, company).await {
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
                    Err(e) => return retry(e),
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
        for need in needs.iter().filter(|n| **n != Need::Attribution) {
            match fetched
                .related(&occ.location_id, &occ.contact_id, *need)
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
