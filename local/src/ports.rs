//! The library's ports on the local store: a [`Queue`] per queue name, and the
//! [`StateStore`].

use std::collections::HashMap;
use std::time::Duration;

use ghl_capi::ports::queue::{Outgoing, Queue, QueueError, Sent};
use ghl_capi::ports::state::{Added, Counts, StateError, StateStore};

use crate::store::Store;

/// How long a job is remembered as done (as on AWS: past any queue's retention).
const PROCESSED_FOR: Duration = Duration::from_secs(15 * 24 * 3600);

/// One named queue of the store.
#[derive(Debug, Clone)]
pub struct LocalQueue {
    pub store: Store,
    pub name: &'static str,
}

impl Queue for LocalQueue {
    async fn send(&self, message: Outgoing) -> Result<(), QueueError> {
        self.send_once(message).await.map(drop)
    }

    /// A repeat is a deduplication id seen on this queue in the last five minutes,
    /// or the key of a job done (enrichment marks a webhook's key when it is).
    async fn send_once(&self, message: Outgoing) -> Result<Sent, QueueError> {
        let new = self
            .store
            .send_shared(self.name, vec![message], true)
            .await
            .map_err(QueueError::new)?;
        Ok(if new == [true] {
            Sent::Queued
        } else {
            Sent::Repeat
        })
    }

    /// All in one transaction: a restart never finds half of them queued.
    async fn send_all(&self, messages: Vec<Outgoing>) -> Result<(), QueueError> {
        self.store
            .send_shared(self.name, messages, false)
            .await
            .map(drop)
            .map_err(QueueError::new)
    }
}

/// The state store on the local store.
#[derive(Debug, Clone)]
pub struct LocalState(pub Store);

fn failed(e: impl std::error::Error + Send + Sync + 'static) -> StateError {
    StateError::new(e)
}

impl StateStore for LocalState {
    async fn tags(
        &self,
        location_id: &str,
        contact_id: &str,
    ) -> Result<Option<Vec<String>>, StateError> {
        self.0
            .tags(location_id, contact_id)
            .map_err(failed)?
            .map(|text| serde_json::from_str(&text).map_err(failed))
            .transpose()
    }

    async fn set_tags(
        &self,
        location_id: &str,
        contact_id: &str,
        tags: &[String],
    ) -> Result<(), StateError> {
        let text = serde_json::to_string(tags).map_err(failed)?;
        self.0
            .set_tags(location_id, contact_id, &text)
            .map_err(failed)
    }

    async fn processed(&self, key: &str) -> Result<bool, StateError> {
        self.0.processed(key).map_err(failed)
    }

    async fn mark_processed(&self, key: &str) -> Result<(), StateError> {
        self.0.mark_processed(key, PROCESSED_FOR).map_err(failed)
    }

    async fn record(&self, key: &str) -> Result<Option<String>, StateError> {
        self.0.record(key).map_err(failed)
    }

    async fn set_record(&self, key: &str, text: &str, keep: Duration) -> Result<(), StateError> {
        self.0.set_record(key, text, keep).map_err(failed)
    }

    async fn delete_record(&self, key: &str) -> Result<(), StateError> {
        self.0.delete_record(key).map_err(failed)
    }

    async fn swap_record(
        &self,
        key: &str,
        expected: Option<&str>,
        text: &str,
        keep: Duration,
    ) -> Result<bool, StateError> {
        self.0
            .swap_record(key, expected, text, keep)
            .map_err(failed)
    }

    async fn records_of(&self, keys: &[String]) -> Result<HashMap<String, String>, StateError> {
        self.0.records_of(keys).map_err(failed)
    }

    async fn set_records(
        &self,
        records: &[(String, String)],
        keep: Duration,
    ) -> Result<(), StateError> {
        self.0.set_records(records, keep).map_err(failed)
    }

    async fn records_under(&self, prefix: &str) -> Result<Vec<(String, String)>, StateError> {
        self.0.records_under(prefix).map_err(failed)
    }

    async fn add_counts(&self, key: &str, added: &Added, keep: Duration) -> Result<(), StateError> {
        self.0.add_counts(key, added, keep).map_err(failed)
    }

    async fn counts_of(&self, keys: &[String]) -> Result<HashMap<String, Counts>, StateError> {
        self.0.counts_of(keys).map_err(failed)
    }

    async fn counted_under(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        self.0.counted_under(prefix).map_err(failed)
    }
}
