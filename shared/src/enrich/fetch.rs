//! GHL reads made once per batch: each contact, and each list of its notes, tasks or
//! appointments, is fetched once however many jobs of the batch name it (a failed
//! read too, so a batch does not hammer a GHL that is down); and what a job reads
//! through them: the contact as its rules need it, the related lists, and what a
//! failed read does to the job and its location (or a failed state read).
//!
//! The jobs of a batch's wave (each of a contact of its own) are enriched one after
//! another, but what they will read is asked of GHL side by side first
//! ([`Enricher::prefetch`]): a Lambda is billed for the time it waits, and ten
//! reads waited for together cost one read's wait, not ten.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde_json::{Map, Value};

use super::read::Read;
use super::{Enriched, Enricher};
use crate::batch::Reason;
use crate::ghl::names::LocationNames;
use crate::ghl::{Contact, GhlError, GhlReader, Related};
use crate::hold::breaker::Gate;
use crate::mapping::{Need, Occurrence};
use crate::ports::state::{StateError, StateStore};

type Key = (String, String);

/// At most this many reads of a wave are made at once (a wave is a batch of
/// distinct contacts: ten on AWS).
const SIDE_BY_SIDE: usize = 10;

/// A read a job will make: a contact, or one of its related lists.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Want {
    Contact(Key),
    Related(Key, Related),
}

/// A read made, as [`Fetched`] keeps it.
enum Got {
    Contact(Key, Box<Result<Contact, GhlError>>),
    Related((Key, Related), Result<Value, GhlError>),
}

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

    /// Reads what is `wanted` and not read yet, side by side, for the jobs to find.
    async fn prefetch(&mut self, wanted: Vec<Want>) {
        let wanted: HashSet<Want> = (wanted.into_iter())
            .filter(|want| match want {
                Want::Contact(key) => !self.contacts.contains_key(key),
                Want::Related(key, related) => !self.related.contains_key(&(key.clone(), *related)),
            })
            .collect();
        let ghl = self.ghl;
        let reads = futures_util::stream::iter(wanted).map(|want| async move {
            match want {
                Want::Contact(key) => {
                    let read = ghl.contact(&key.0, &key.1).await;
                    Got::Contact(key, Box::new(read))
                }
                Want::Related(key, related) => {
                    let read = ghl.related(&key.0, &key.1, related).await;
                    Got::Related((key, related), read)
                }
            }
        });
        let mut reads = reads.buffer_unordered(SIDE_BY_SIDE);
        while let Some(got) = reads.next().await {
            match got {
                Got::Contact(key, read) => {
                    self.contacts.insert(key, *read);
                }
                Got::Related(key, read) => {
                    self.related.insert(key, read);
                }
            }
        }
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
        match carried {
            Some((contact, _)) if !self.reads_contact(occ, carried) => Ok(contact.clone()),
            _ => {
                let mut contact = (self.fetched)
                    .contact(&occ.location_id, &occ.contact_id)
                    .await?;
                self.mapping.disown(&mut contact.tags);
                Ok(contact)
            }
        }
    }

    /// Whether the rules on `occ` need the contact read from GHL: it is not
    /// carried, or carried without the attribution a rule needs.
    fn reads_contact(&self, occ: &Occurrence, carried: Option<(&Contact, bool)>) -> bool {
        match carried {
            Some((_, with_attribution)) => {
                !with_attribution && self.mapping.needs(occ.trigger).contains(&Need::Attribution)
            }
            None => true,
        }
    }

    /// The related lists the rules on `occ` need, each with its need.
    fn related_wanted(
        &self,
        occ: &Occurrence,
    ) -> impl Iterator<Item = (Need, Related)> + use<G, S> {
        let needs = self.mapping.needs(occ.trigger).into_iter();
        needs.filter_map(|need| Some((need, need.related()?)))
    }

    /// Asks GHL, side by side, for what the jobs `reads` will read one after
    /// another: each one's contact (unless it carries what its rules need) and
    /// related lists, for the occurrences its rules will fire on. A location whose
    /// breaker has seen a failure is left out: its reads go one at a time, so a
    /// GHL still down is probed once, not once a job.
    pub(super) async fn prefetch<'r>(&mut self, reads: impl IntoIterator<Item = &'r Read>) {
        let mut wanted = Vec::new();
        for read in reads {
            let firing = self.firing(&read.occurrences);
            if firing.is_empty() || !self.served(read) || !self.breakers.clean(&read.location).await
            {
                continue;
            }
            let carried = read.carried.as_ref().map(|c| (c, read.carried_attribution));
            for occ in firing {
                let key = (occ.location_id.clone(), occ.contact_id.clone());
                if self.reads_contact(occ, carried) {
                    wanted.push(Want::Contact(key.clone()));
                }
                let related = self.related_wanted(occ);
                wanted.extend(related.map(|(_, r)| Want::Related(key.clone(), r)));
            }
        }
        self.fetched.prefetch(wanted).await;
    }

    /// The related lists the rules on `occ` need, by their mapping names.
    pub(super) async fn related(
        &mut self,
        occ: &Occurrence,
    ) -> Result<Map<String, serde_json::Value>, GhlError> {
        let mut related = Map::new();
        for (need, wanted) in self.related_wanted(occ) {
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
