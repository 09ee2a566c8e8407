//! The state port: what the stages remember. Per contact, the tags last seen; per
//! job, that it was done (beyond a queue's own deduplication window); records kept
//! for a while under a key (a partner's circuit breaker, a held job's history, the
//! events Meta took, the locations to mint tokens for), some many at once.
//! DynamoDB on AWS, SQLite locally.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use super::BoxError;

/// A state store failure; the job is retried.
#[derive(Debug, thiserror::Error)]
#[error("state store failed: {source}")]
pub struct StateError {
    #[source]
    pub source: BoxError,
}

impl StateError {
    /// Wraps an adapter's error.
    pub fn new(source: impl Into<BoxError>) -> Self {
        StateError {
            source: source.into(),
        }
    }
}

/// Where enrichment's memory is kept.
pub trait StateStore: Send + Sync {
    /// The contact's tags as last remembered; `None` if it was never seen.
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
    /// The contact as remembered (read strongly), and whether the job `key` about
    /// it is done, where the store keeps a contact's jobs with it. This one keeps
    /// them apart: it asks [`StateStore::processed`].
    fn contact(
        &self,
        location_id: &str,
        contact_id: &str,
        key: &str,
    ) -> impl Future<Output = Result<Remembered, StateError>> + Send {
        async move {
            Ok(Remembered {
                tags: self.tags(location_id, contact_id).await?,
                done: self.processed(key).await?,
                jobs: DoneJobs::default(),
            })
        }
    }
    /// Remembers the contact's `tags` and that the job `key` about it is done, in
    /// one write where the store keeps a contact's jobs with it; `was` is what
    /// [`StateStore::contact`] read. This one writes them apart.
    fn set_tags_done(
        &self,
        location_id: &str,
        contact_id: &str,
        tags: &[String],
        key: &str,
        _was: &Remembered,
    ) -> impl Future<Output = Result<(), StateError>> + Send {
        async move {
            self.set_tags(location_id, contact_id, tags).await?;
            self.mark_processed(key).await
        }
    }
    /// The text kept under `key`, unless it has run out.
    fn record(&self, key: &str) -> impl Future<Output = Result<Option<String>, StateError>> + Send;
    /// Keeps `text` under `key` for `keep`, in place of what was there.
    fn set_record(
        &self,
        key: &str,
        text: &str,
        keep: Duration,
    ) -> impl Future<Output = Result<(), StateError>> + Send;
    fn delete_record(&self, key: &str) -> impl Future<Output = Result<(), StateError>> + Send;
    /// Keeps `text` under `key` for `keep` only if what is kept there now (not run
    /// out) is `expected` (`None`: nothing): whether it did. One writer wins a
    /// race; the others see `false`.
    fn swap_record(
        &self,
        key: &str,
        expected: Option<&str>,
        text: &str,
        keep: Duration,
    ) -> impl Future<Output = Result<bool, StateError>> + Send;
    /// Of `keys`, those kept and not run out, with their texts (many at once: a
    /// dispatch batch asks about up to 1,000 events).
    fn records_of(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<HashMap<String, String>, StateError>> + Send;
    /// Every record whose key starts with `prefix`, not run out, as `(key, text)`
    /// (for an operator's command over many records, such as a full audience
    /// sync: on DynamoDB it scans the table).
    fn records_under(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<(String, String)>, StateError>> + Send;
    /// Keeps each `(key, text)` for `keep`, many at once (an empty text is a
    /// mark).
    fn set_records(
        &self,
        records: &[(String, String)],
        keep: Duration,
    ) -> impl Future<Output = Result<(), StateError>> + Send;
    /// Adds each counter of `added` to those kept under `key` (one not yet kept
    /// starts at 0) and each member to its set, all kept for `keep` from now. One
    /// write, exact under any number of writers: several dispatch functions count
    /// the same pixel's day.
    fn add_counts(
        &self,
        key: &str,
        added: &Added,
        keep: Duration,
    ) -> impl Future<Output = Result<(), StateError>> + Send;
    /// The counters kept under each of `keys` that has any, not run out, and the
    /// size of each set under its name.
    fn counts_of(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<HashMap<String, Counts>, StateError>> + Send;
    /// The keys with counters that start with `prefix`, not run out (an
    /// operator's command's listing: on DynamoDB it scans the table).
    fn counted_under(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<String>, StateError>> + Send;
}

/// A contact as [`StateStore::contact`] remembers it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remembered {
    /// Its tags as last remembered; `None` if it was never seen.
    pub tags: Option<Vec<String>>,
    /// Whether the job asked about is done already.
    pub done: bool,
    /// The jobs about it done lately, where the store keeps them with it.
    pub jobs: DoneJobs,
}

/// The jobs about a contact done lately, as a store that keeps them with the
/// contact read them (so marking a job done costs no write of its own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DoneJobs {
    /// Each job's key and when it was done (seconds since the epoch).
    pub keys: Vec<(String, u64)>,
    /// Since when `keys` holds every job of the contact done (`0`: always; `None`:
    /// it never did, as written before jobs were kept with contacts).
    pub since: Option<u64>,
    /// Until when a job left out of `keys` for room may be marked apart.
    pub spilled_until: u64,
}

/// Counters by name, as [`StateStore::counts_of`] gives them.
pub type Counts = std::collections::BTreeMap<String, u64>;

/// What [`StateStore::add_counts`] adds: `(name, n)` to counters, `(name,
/// members)` to sets (distinct members, counted once however often added).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Added {
    pub counts: Vec<(String, u64)>,
    pub members: Vec<(String, Vec<String>)>,
}

impl Added {
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.members.is_empty()
    }
}

#[cfg(any(test, feature = "test-util"))]
pub use memory::MemoryState;

#[cfg(any(test, feature = "test-util"))]
mod memory {
    use std::collections::{HashMap, HashSet};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use super::{Added, Counts, DoneJobs, Remembered, StateError, StateStore};

    /// Each contact's tags, by location and contact.
    type Tags = HashMap<(String, String), Vec<String>>;
    /// The jobs marked done with each contact, by location and contact.
    type Jobs = HashMap<(String, String), HashSet<String>>;
    /// Each record's text and end.
    type Records = HashMap<String, (String, Instant)>;
    /// Each key's counters, sets and end.
    type Counted = HashMap<String, (Counts, HashMap<String, HashSet<String>>, Instant)>;

    /// A state store in memory, for tests; clones share it.
    #[derive(Debug, Default, Clone)]
    pub struct MemoryState {
        tags: Arc<Mutex<Tags>>,
        jobs: Arc<Mutex<Jobs>>,
        processed: Arc<Mutex<HashSet<String>>>,
        records: Arc<Mutex<Records>>,
        counts: Arc<Mutex<Counted>>,
    }

    fn poisoned<T>(_: T) -> StateError {
        StateError::new("poisoned")
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

        // Jobs are kept with their contacts, as on DynamoDB: a contact job's mark
        // is not found by `processed`.
        async fn contact(
            &self,
            location_id: &str,
            contact_id: &str,
            key: &str,
        ) -> Result<Remembered, StateError> {
            let contact = (location_id.to_owned(), contact_id.to_owned());
            let listed = (self.jobs.lock().map_err(poisoned)?.get(&contact))
                .is_some_and(|jobs| jobs.contains(key));
            Ok(Remembered {
                tags: self.tags(location_id, contact_id).await?,
                done: listed || self.processed(key).await?,
                jobs: DoneJobs::default(),
            })
        }

        async fn set_tags_done(
            &self,
            location_id: &str,
            contact_id: &str,
            tags: &[String],
            key: &str,
            _was: &Remembered,
        ) -> Result<(), StateError> {
            self.set_tags(location_id, contact_id, tags).await?;
            let contact = (location_id.to_owned(), contact_id.to_owned());
            let mut jobs = self.jobs.lock().map_err(poisoned)?;
            jobs.entry(contact).or_default().insert(key.to_owned());
            Ok(())
        }

        async fn record(&self, key: &str) -> Result<Option<String>, StateError> {
            let records = self.records.lock().map_err(poisoned)?;
            Ok(records
                .get(key)
                .filter(|(_, until)| *until > Instant::now())
                .map(|(text, _)| text.clone()))
        }

        async fn set_record(
            &self,
            key: &str,
            text: &str,
            keep: Duration,
        ) -> Result<(), StateError> {
            let until = Instant::now() + keep;
            let mut records = self.records.lock().map_err(poisoned)?;
            records.insert(key.to_owned(), (text.to_owned(), until));
            Ok(())
        }

        async fn delete_record(&self, key: &str) -> Result<(), StateError> {
            self.records.lock().map_err(poisoned)?.remove(key);
            Ok(())
        }

        async fn swap_record(
            &self,
            key: &str,
            expected: Option<&str>,
            text: &str,
            keep: Duration,
        ) -> Result<bool, StateError> {
            let now = Instant::now();
            let mut records = self.records.lock().map_err(poisoned)?;
            let current = records
                .get(key)
                .filter(|(_, until)| *until > now)
                .map(|(text, _)| text.as_str());
            if current != expected {
                return Ok(false);
            }
            records.insert(key.to_owned(), (text.to_owned(), now + keep));
            Ok(true)
        }

        async fn records_of(&self, keys: &[String]) -> Result<HashMap<String, String>, StateError> {
            let records = self.records.lock().map_err(poisoned)?;
            let now = Instant::now();
            Ok(keys
                .iter()
                .filter_map(|k| match records.get(k) {
                    Some((text, until)) if *until > now => Some((k.clone(), text.clone())),
                    _ => None,
                })
                .collect())
        }

        async fn records_under(&self, prefix: &str) -> Result<Vec<(String, String)>, StateError> {
            let records = self.records.lock().map_err(poisoned)?;
            let now = Instant::now();
            let mut found: Vec<(String, String)> = records
                .iter()
                .filter(|(key, (_, until))| key.starts_with(prefix) && *until > now)
                .map(|(key, (text, _))| (key.clone(), text.clone()))
                .collect();
            found.sort();
            Ok(found)
        }

        async fn set_records(
            &self,
            records: &[(String, String)],
            keep: Duration,
        ) -> Result<(), StateError> {
            let until = Instant::now() + keep;
            let mut kept = self.records.lock().map_err(poisoned)?;
            for (key, text) in records {
                kept.insert(key.clone(), (text.clone(), until));
            }
            Ok(())
        }

        async fn add_counts(
            &self,
            key: &str,
            added: &Added,
            keep: Duration,
        ) -> Result<(), StateError> {
            let now = Instant::now();
            let mut kept = self.counts.lock().map_err(poisoned)?;
            let (counters, sets, until) = kept
                .entry(key.to_owned())
                .or_insert_with(|| (Counts::new(), HashMap::new(), now));
            if *until <= now {
                counters.clear();
                sets.clear();
            }
            for (name, n) in &added.counts {
                *counters.entry(name.clone()).or_default() += n;
            }
            for (name, members) in &added.members {
                sets.entry(name.clone())
                    .or_default()
                    .extend(members.iter().cloned());
            }
            *until = now + keep;
            Ok(())
        }

        async fn counts_of(&self, keys: &[String]) -> Result<HashMap<String, Counts>, StateError> {
            let kept = self.counts.lock().map_err(poisoned)?;
            let now = Instant::now();
            Ok(keys
                .iter()
                .filter_map(|k| match kept.get(k) {
                    Some((counts, sets, until)) if *until > now => {
                        let mut all = counts.clone();
                        all.extend(
                            sets.iter()
                                .map(|(name, set)| (name.clone(), set.len() as u64)),
                        );
                        Some((k.clone(), all))
                    }
                    _ => None,
                })
                .collect())
        }

        async fn counted_under(&self, prefix: &str) -> Result<Vec<String>, StateError> {
            let kept = self.counts.lock().map_err(poisoned)?;
            let now = Instant::now();
            let mut keys: Vec<String> = kept
                .iter()
                .filter(|(key, (_, _, until))| key.starts_with(prefix) && *until > now)
                .map(|(key, _)| key.clone())
                .collect();
            keys.sort();
            Ok(keys)
        }
    }
}
