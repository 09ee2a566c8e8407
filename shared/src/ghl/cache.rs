//! Contact reads kept a short while (`GHL_CONTACT_CACHE_SECONDS`, 60 s by default):
//! a new lead's webhooks (its opportunity, its appointment) come within seconds of
//! each other, and each job would read the same contact. A webhook telling of a
//! change to the contact, received after the read was made, drops it
//! ([`super::GhlReader::forget`]): one received before is in the read already (so
//! the webhooks of one batch never drop a read made for it). The reads live in the
//! process's memory only, a bounded number of them; a process of its own (another
//! function instance) may serve a read up to the window's age that a change
//! elsewhere has made stale.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::Contact;

/// The most contacts kept: a few megabytes at most.
const CAPACITY: usize = 1024;

type Key = (String, String);

/// A read: when (for its age, and to compare with a change's time), and what.
#[derive(Debug)]
struct Read {
    at: Instant,
    made: DateTime<Utc>,
    contact: Contact,
}

#[derive(Debug, Default)]
pub(super) struct ContactCache {
    ttl: Duration,
    reads: Mutex<HashMap<Key, Read>>,
}

fn key(location: &str, contact: &str) -> Key {
    (location.to_owned(), contact.to_owned())
}

impl ContactCache {
    /// Reads kept for `ttl`; zero keeps none.
    pub(super) fn new(ttl: Duration) -> Self {
        ContactCache {
            ttl,
            reads: Mutex::default(),
        }
    }

    fn reads(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Read>> {
        self.reads.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The contact as read less than the window ago.
    pub(super) fn get(&self, location: &str, contact: &str) -> Option<Contact> {
        let reads = self.reads();
        let read = reads.get(&key(location, contact))?;
        (read.at.elapsed() < self.ttl).then(|| read.contact.clone())
    }

    pub(super) fn put(&self, location: &str, contact: &str, read: &Contact) {
        if self.ttl.is_zero() {
            return;
        }
        let mut reads = self.reads();
        if reads.len() >= CAPACITY {
            reads.retain(|_, read| read.at.elapsed() < self.ttl);
        }
        if reads.len() >= CAPACITY
            && let Some(oldest) = (reads.iter())
                .min_by_key(|(_, read)| read.at)
                .map(|(k, _)| k.clone())
        {
            reads.remove(&oldest);
        }
        let read = Read {
            at: Instant::now(),
            made: Utc::now(),
            contact: read.clone(),
        };
        reads.insert(key(location, contact), read);
    }

    /// The contact changed, as a webhook received at `received` tells: a read made
    /// before that is stale.
    pub(super) fn forget(&self, location: &str, contact: &str, received: DateTime<Utc>) {
        let mut reads = self.reads();
        let key = key(location, contact);
        if reads.get(&key).is_some_and(|read| read.made <= received) {
            reads.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(id: &str) -> Contact {
        serde_json::from_value(serde_json::json!({"id": id})).expect("contact")
    }

    #[test]
    fn a_read_serves_until_its_window_passes_or_a_change_drops_it() {
        let cache = ContactCache::new(Duration::from_millis(80));
        cache.put("loc", "c1", &contact("c1"));
        assert_eq!(cache.get("loc", "c1").map(|c| c.id), Some("c1".into()));
        assert!(cache.get("other", "c1").is_none(), "per location");
        let before = Utc::now() - chrono::Duration::seconds(1);
        cache.forget("loc", "c1", before);
        assert!(
            cache.get("loc", "c1").is_some(),
            "a change it holds already"
        );
        cache.forget("loc", "c1", Utc::now());
        assert!(cache.get("loc", "c1").is_none(), "a change since drops it");
        cache.put("loc", "c1", &contact("c1"));
        std::thread::sleep(Duration::from_millis(90));
        assert!(cache.get("loc", "c1").is_none(), "the window passed");
        let off = ContactCache::new(Duration::ZERO);
        off.put("loc", "c1", &contact("c1"));
        assert!(off.get("loc", "c1").is_none(), "zero keeps none");
    }

    #[test]
    fn it_keeps_at_most_its_capacity_dropping_the_oldest() {
        let cache = ContactCache::new(Duration::from_secs(60));
        for n in 0..=CAPACITY {
            let id = format!("c{n}");
            cache.put("loc", &id, &contact(&id));
            if n == 0 {
                // Older than every other, whatever the clock's resolution.
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        assert_eq!(cache.reads().len(), CAPACITY);
        assert!(cache.get("loc", "c0").is_none(), "the oldest went");
        assert!(cache.get("loc", &format!("c{CAPACITY}")).is_some());
    }
}
