//! GHL reads made once per batch: each contact, and each list of its notes, tasks or
//! appointments, is fetched once however many jobs of the batch name it (a failed
//! read too, so a batch does not hammer a GHL that is down); and what a job reads
//! through them: the contact as its rules need it, the related lists, and what a
//! failed read does to the job and its location (or a failed state read).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{Enriched, Enricher};
use crate::batch::Reason;
use crate::ghl::names::LocationNames;
use crate::ghl::{Contact, GhlError, GhlReader, Related};
use crate::hold::breaker::Gate;
use crate::mapping::{Need, Occurrence};
use crate::ports::state::{StateError, StateStore};

type Key = (String, String);

/// The reads of one batch.
pub(super) struct Fetched<'g, G> {
    ghl: &'g G,
    contacts: HashMap<Key, Result<Contact, GhlError>>,
    related: HashMap<(Key, Related), Result<Value, GhlError>>,
    /// Each location's names, once read in this batch ([`super::names`]).
    pub(super) names: HashMap<String, Option<LocationNames>>,
}

impl<'g, G> Fetched<'g, G> {
    pub(super) fn new(ghl: &'g G) -> Self {
        Fetched {
            ghl,
            contacts: HashMap::new(),
            related: HashMap::new(),
            names: HashMap::new(),
        }
    }

    /// How many contacts were read.
    pub(super) fn contacts(&self) -> usize {
        self.contacts.len()
    }

    /// The reader itself, for what is not cached (installs).
    pub(super) fn ghl(&self) -> &'g G {
        self.ghl
    }
}

impl<G: GhlReader> Fetched<'_, G> {
    pub(super) async fn contact(
        &mut self,
        location: &str,
        contact: &str,
    ) -> Result<Contact, GhlError> {
        let key = (location.to_owned(), contact.to_owned());
        if let Some(done) = self.contacts.get(&key) {
            return done.clone();
        }
        let fetched = self.ghl.contact(location, contact).await;
        self.contacts.insert(key, fetched.clone());
        fetched
    }

    /// The contact, if this batch read it already (and GHL had it).
    pub(super) fn cached(&self, location: &str, contact: &str) -> Option<Contact> {
        let key = (location.to_owned(), contact.to_owned());
        self.contacts.get(&key).and_then(|read| read.clone().ok())
    }

    pub(super) async fn related(
        &mut self,
        location: &str,
        contact: &str,
        related: Related,
    ) -> Result<Value, GhlError> {
        let key = ((location.to_owned(), contact.to_owned()), related);
        if let Some(done) = self.related.get(&key) {
            return done.clone();
        }
        let fetched = self.ghl.related(location, contact, related).await;
        self.related.insert(key, fetched.clone());
        fetched
    }
}

/// A job's reads, through the batch's [`Fetched`].
impl<G: GhlReader, S: StateStore> Enricher<'_, G, S> {
    /// The contact as the rules on `occ` need it: as carried (with whether its
    /// attribution came too), or read from GHL.
    pub(super) async fn contact(
        &mut self,
        occ: &Occurrence,
        carried: Option<(&Contact, bool)>,
    ) -> Result<Contact, GhlError> {
        let needs_attribution = self.mapping.needs(occ.trigger).contains(&Need::Attribution);
        match carried {
            Some((contact, with_attribution)) if with_attribution || !needs_attribution => {
                Ok(contact.clone())
            }
            _ => {
                let mut contact = (self.fetched)
                    .contact(&occ.location_id, &occ.contact_id)
                    .await?;
                self.mapping.disown(&mut contact.tags);
                Ok(contact)
            }
        }
    }

    /// The related lists the rules on `occ` need, by their mapping names.
    pub(super) async fn related(
        &mut self,
        occ: &Occurrence,
    ) -> Result<Map<String, serde_json::Value>, GhlError> {
        let mut related = Map::new();
        for need in self.mapping.needs(occ.trigger) {
            let Some(wanted) = need.related() else {
                continue;
            };
            match self
                .fetched
                .related(&occ.location_id, &occ.contact_id, wanted)
                .await
            {
                Ok(list) => {
                    related.insert(need.name().to_owned(), list);
                }
                Err(GhlError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(related)
    }

    /// The job's outcome while `location`'s breaker holds its GHL calls: tried
    /// again at the breaker's next probe. `None`: GHL may be called.
    pub(super) async fn paused(
        &mut self,
        location: &str,
        triggers: &[String],
        now: DateTime<Utc>,
    ) -> Option<Enriched> {
        let Gate::Paused { until, code, cause } = self.breakers.gate(location, now).await else {
            return None;
        };
        let reason = Reason::new(
            code,
            format!("GHL is paused for location {location}: {cause}"),
        );
        Some(Enriched::Retry {
            reason,
            after: (until - now).to_std().unwrap_or_default(),
            triggers: triggers.to_vec(),
        })
    }

    /// GHL failed a read for `location`: the job is retried, and unless GHL only
    /// asked to slow down (or the call waits for the budget), the location's
    /// breaker opens.
    pub(super) async fn ghl_failed(
        &mut self,
        location: &str,
        e: &GhlError,
        triggers: Vec<String>,
        now: DateTime<Utc>,
    ) -> Enriched {
        let outcome = retry_ghl(e, triggers);
        if let Enriched::Retry { reason, .. } = &outcome
            && !matches!(e, GhlError::RateLimited { .. } | GhlError::Reserved { .. })
        {
            self.breakers
                .failed(location, reason.code, &reason.text, now)
                .await;
        }
        outcome
    }
}

/// A job the state store failed: tried again at once.
pub(super) fn retry_state(e: StateError) -> Enriched {
    Enriched::Retry {
        reason: Reason::of("state_store_failed", &e),
        after: Duration::ZERO,
        triggers: Vec::new(),
    }
}

/// A job GHL failed: tried again after GHL's own interval, if it named one.
pub(super) fn retry_ghl(e: &GhlError, triggers: Vec<String>) -> Enriched {
    let after = match e {
        GhlError::RateLimited { retry_after_ms } | GhlError::Reserved { retry_after_ms, .. } => {
            Duration::from_millis(*retry_after_ms)
        }
        _ => Duration::ZERO,
    };
    Enriched::Retry {
        reason: Reason::of(e.code(), e),
        after,
        triggers,
    }
}
