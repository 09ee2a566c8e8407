//! A state store whose writes fail on demand, for the consumers' tests of a table
//! throttled or down, and whose job marks can be read stale (as an eventually
//! consistent read may).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ghl_capi::ports::state::{Added, Counts, MemoryState, StateError, StateStore};

/// A state store whose writes fail while [`FailingWrites::fail`] says so (a table
/// throttled or down), its reads still answered from `inner`; and whose job marks
/// are not seen while [`FailingWrites::marks_unseen`] says so, or not read at all
/// while [`FailingWrites::fail_mark_reads`] does.
#[derive(Debug, Default)]
pub struct FailingWrites {
    pub inner: MemoryState,
    failing: AtomicBool,
    marks_unseen: AtomicBool,
    marks_failing: AtomicBool,
}

impl FailingWrites {
    /// From now on, writes fail (`true`) or go through (`false`).
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::Relaxed);
    }

    /// From now on, a job's mark is (`true`) or is not read as if not written yet.
    pub fn marks_unseen(&self, unseen: bool) {
        self.marks_unseen.store(unseen, Ordering::Relaxed);
    }

    /// From now on, reading a job's mark fails (`true`) or is answered.
    pub fn fail_mark_reads(&self, failing: bool) {
        self.marks_failing.store(failing, Ordering::Relaxed);
    }

    fn write(&self) -> Result<(), StateError> {
        match self.failing.load(Ordering::Relaxed) {
            true => Err(StateError::new("the table is down")),
            false => Ok(()),
        }
    }
}

impl StateStore for FailingWrites {
    async fn tags(&self, location: &str, contact: &str) -> Result<Option<Vec<String>>, StateError> {
        self.inner.tags(location, contact).await
    }
    async fn set_tags(
        &self,
        location: &str,
        contact: &str,
        tags: &[String],
    ) -> Result<(), StateError> {
        self.write()?;
        self.inner.set_tags(location, contact, tags).await
    }
    async fn processed(&self, key: &str) -> Result<bool, StateError> {
        if self.marks_failing.load(Ordering::Relaxed) {
            return Err(StateError::new("the table is down"));
        }
        let seen = self.inner.processed(key).await?;
        Ok(seen && !self.marks_unseen.load(Ordering::Relaxed))
    }
    async fn mark_processed(&self, key: &str) -> Result<(), StateError> {
        self.write()?;
        self.inner.mark_processed(key).await
    }
    async fn record(&self, key: &str) -> Result<Option<String>, StateError> {
        self.inner.record(key).await
    }
    async fn set_record(&self, key: &str, text: &str, keep: Duration) -> Result<(), StateError> {
        self.write()?;
        self.inner.set_record(key, text, keep).await
    }
    async fn delete_record(&self, key: &str) -> Result<(), StateError> {
        self.write()?;
        self.inner.delete_record(key).await
    }
    async fn swap_record(
        &self,
        key: &str,
        expected: Option<&str>,
        text: &str,
        keep: Duration,
    ) -> Result<bool, StateError> {
        self.write()?;
        self.inner.swap_record(key, expected, text, keep).await
    }
    async fn records_of(&self, keys: &[String]) -> Result<HashMap<String, String>, StateError> {
        self.inner.records_of(keys).await
    }
    async fn records_under(&self, prefix: &str) -> Result<Vec<(String, String)>, StateError> {
        self.inner.records_under(prefix).await
    }
    async fn set_records(
        &self,
        records: &[(String, String)],
        keep: Duration,
    ) -> Result<(), StateError> {
        self.write()?;
        self.inner.set_records(records, keep).await
    }
    async fn add_counts(&self, key: &str, added: &Added, keep: Duration) -> Result<(), StateError> {
        self.write()?;
        self.inner.add_counts(key, added, keep).await
    }
    async fn counts_of(&self, keys: &[String]) -> Result<HashMap<String, Counts>, StateError> {
        self.inner.counts_of(keys).await
    }
    async fn counted_under(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        self.inner.counted_under(prefix).await
    }
}
