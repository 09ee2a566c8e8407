//! The store's state: each contact's tags, the jobs done, and records (texts kept
//! under a key for a while) with their compare-and-set.

use std::collections::HashMap;
use std::time::Duration;

use ghl_capi::ports::state::{Added, Counts};
use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, now_ms};

impl Store {
    pub(crate) fn tags(
        &self,
        location_id: &str,
        contact_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT tags FROM tags WHERE location_id = ?1 AND contact_id = ?2",
                params![location_id, contact_id],
                |row| row.get(0),
            )
            .optional()?)
    }

    pub(crate) fn set_tags(
        &self,
        location_id: &str,
        contact_id: &str,
        tags: &str,
    ) -> Result<(), StoreError> {
        self.lock().execute(
            "INSERT OR REPLACE INTO tags (location_id, contact_id, tags) VALUES (?1, ?2, ?3)",
            params![location_id, contact_id, tags],
        )?;
        Ok(())
    }

    pub(crate) fn processed(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT 1 FROM processed WHERE key = ?1 AND expires_at > ?2",
                params![key, now_ms()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    pub(crate) fn record(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT text FROM records WHERE key = ?1 AND expires_at > ?2",
                params![key, now_ms()],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Every record whose key starts with `prefix`, not run out, by key.
    pub(crate) fn records_under(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        // Ranged on the key's index: from the prefix up to the first key past all
        // that start with it (its last character's successor).
        let mut end = prefix.to_owned();
        let last = end.pop().and_then(|c| char::from_u32(c as u32 + 1));
        let db = self.lock();
        let mut query = db.prepare_cached(
            "SELECT key, text FROM records WHERE key >= ?1 AND (?2 IS NULL OR key < ?2) \
             AND expires_at > ?3 ORDER BY key",
        )?;
        let end = last.map(|c| {
            end.push(c);
            end
        });
        let rows = query.query_map(params![prefix, end, now_ms()], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub(crate) fn set_record(
        &self,
        key: &str,
        text: &str,
        keep: Duration,
    ) -> Result<(), StoreError> {
        self.set_records(&[(key.to_owned(), text.to_owned())], keep)
    }

    /// Keeps `text` under `key` if what is kept there (not run out) is `expected`,
    /// in one transaction: whether it did.
    pub(crate) fn swap_record(
        &self,
        key: &str,
        expected: Option<&str>,
        text: &str,
        keep: Duration,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut db = self.lock();
        let tx = db.transaction()?;
        let current: Option<String> = tx
            .query_row(
                "SELECT text FROM records WHERE key = ?1 AND expires_at > ?2",
                params![key, now],
                |row| row.get(0),
            )
            .optional()?;
        if current.as_deref() != expected {
            return Ok(false);
        }
        tx.execute(
            "INSERT OR REPLACE INTO records (key, text, expires_at) VALUES (?1, ?2, ?3)",
            params![key, text, now + keep.as_millis() as i64],
        )?;
        tx.commit()?;
        Ok(true)
    }

    pub(crate) fn delete_record(&self, key: &str) -> Result<(), StoreError> {
        self.lock()
            .execute("DELETE FROM records WHERE key = ?1", params![key])?;
        Ok(())
    }

    /// Of `keys`, those kept as records (and not run out), with their texts.
    pub(crate) fn records_of(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        let db = self.lock();
        let mut query =
            db.prepare_cached("SELECT text FROM records WHERE key = ?1 AND expires_at > ?2")?;
        let now = now_ms();
        let mut found = HashMap::new();
        for key in keys {
            if let Some(text) = query
                .query_row(params![key, now], |row| row.get::<_, String>(0))
                .optional()?
            {
                found.insert(key.clone(), text);
            }
        }
        Ok(found)
    }

    /// Keeps each `(key, text)` for `keep`, all or none.
    pub(crate) fn set_records(
        &self,
        records: &[(String, String)],
        keep: Duration,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut db = self.lock();
        let tx = db.transaction()?;
        tx.execute("DELETE FROM records WHERE expires_at <= ?1", params![now])?;
        for (key, text) in records {
            tx.execute(
                "INSERT OR REPLACE INTO records (key, text, expires_at) VALUES (?1, ?2, ?3)",
                params![key, text, now + keep.as_millis() as i64],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Adds `added` to `key`'s counters and sets, all kept for `keep` from now,
    /// in one transaction; counters run out (any key's) are deleted first, so
    /// this key's start again at 0. A set's members share its counter's row (`n`
    /// 0) for their time.
    pub(crate) fn add_counts(
        &self,
        key: &str,
        added: &Added,
        keep: Duration,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let until = now + keep.as_millis() as i64;
        let mut db = self.lock();
        let tx = db.transaction()?;
        // Whatever ran out goes, this key's included (its counters start again).
        tx.execute(
            "DELETE FROM count_members WHERE key IN (SELECT key FROM counts WHERE expires_at <= ?1)",
            params![now],
        )?;
        tx.execute("DELETE FROM counts WHERE expires_at <= ?1", params![now])?;
        let sets = added.members.iter().map(|(name, _)| (name, 0));
        for (name, n) in added.counts.iter().map(|(name, n)| (name, *n)).chain(sets) {
            tx.execute(
                "INSERT INTO counts (key, name, n, expires_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (key, name) DO UPDATE SET n = n + excluded.n",
                params![key, name, n as i64, until],
            )?;
        }
        for (name, members) in &added.members {
            for member in members {
                tx.execute(
                    "INSERT OR IGNORE INTO count_members (key, name, member) VALUES (?1, ?2, ?3)",
                    params![key, name, member],
                )?;
            }
        }
        tx.execute(
            "UPDATE counts SET expires_at = ?2 WHERE key = ?1",
            params![key, until],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The counters of each of `keys` that has any, not run out, with each set's
    /// size under its name.
    pub(crate) fn counts_of(&self, keys: &[String]) -> Result<HashMap<String, Counts>, StoreError> {
        let db = self.lock();
        let mut query = db.prepare_cached(
            "SELECT c.name, c.n + (SELECT count(*) FROM count_members m WHERE m.key = c.key AND m.name = c.name) \
             FROM counts c WHERE c.key = ?1 AND c.expires_at > ?2",
        )?;
        let now = now_ms();
        let mut found = HashMap::new();
        for key in keys {
            let rows = query.query_map(params![key, now], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?;
            let counts: Counts = rows
                .map(|row| row.map(|(name, n)| (name, n.max(0) as u64)))
                .collect::<Result<_, _>>()?;
            if !counts.is_empty() {
                found.insert(key.clone(), counts);
            }
        }
        Ok(found)
    }

    /// The keys with live counters that start with `prefix`.
    pub(crate) fn counted_under(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let db = self.lock();
        let mut query = db.prepare_cached(
            "SELECT DISTINCT key FROM counts WHERE substr(key, 1, length(?1)) = ?1 AND expires_at > ?2 ORDER BY key",
        )?;
        let keys = query.query_map(params![prefix, now_ms()], |row| row.get::<_, String>(0))?;
        Ok(keys.collect::<Result<_, _>>()?)
    }

    pub(crate) fn mark_processed(&self, key: &str, keep: Duration) -> Result<(), StoreError> {
        let now = now_ms();
        let db = self.lock();
        db.execute("DELETE FROM processed WHERE expires_at <= ?1", params![now])?;
        db.execute(
            "INSERT OR REPLACE INTO processed (key, expires_at) VALUES (?1, ?2)",
            params![key, now + keep.as_millis() as i64],
        )?;
        Ok(())
    }
}
