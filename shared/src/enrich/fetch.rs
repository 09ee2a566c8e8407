//! GHL reads made once per batch: each contact, and each list of its notes, tasks or
//! appointments, is fetched once however many jobs of the batch name it (a failed
//! read too, so a batch does not hammer a GHL that is down).

use std::collections::HashMap;

use serde_json::Value;

use crate::ghl::{Contact, GhlError, GhlReader, Related};

type Key = (String, String);

/// The reads of one batch.
pub(super) struct Fetched<'g, G> {
    ghl: &'g G,
    contacts: HashMap<Key, Result<Contact, GhlError>>,
    related: HashMap<(Key, Related), Result<Value, GhlError>>,
}

impl<'g, G> Fetched<'g, G> {
    pub(super) fn new(ghl: &'g G) -> Self {
        Fetched {
            ghl,
            contacts: HashMap::new(),
            related: HashMap::new(),
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
