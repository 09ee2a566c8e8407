//! The mapping store port: where a mapping's published versions are kept (a
//! versioned S3 object on AWS, a file and its history locally), read by the
//! running stages and written by `ghl-capi mapping publish`. It holds text only:
//! checking it is the mapping's own business.

use std::future::Future;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::BoxError;

/// A mapping text's version: the start of its SHA-256, so one text has one name
/// in every store, in events' traces and in letters.
pub fn version_of(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..6])
}

/// One published version: its name, when it was published, and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub listed: Listed,
    pub text: String,
}

impl Published {
    pub fn new(text: String, at: Option<DateTime<Utc>>) -> Self {
        Published {
            listed: Listed {
                version: version_of(&text),
                at,
                size: text.len(),
            },
            text,
        }
    }
}

/// A version as a history lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub version: String,
    pub at: Option<DateTime<Utc>>,
    /// Its text's length in bytes.
    pub size: usize,
}

/// The store could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("the mapping store ({place}) failed: {source}")]
pub struct MappingStoreError {
    pub place: String,
    #[source]
    pub source: BoxError,
}

impl MappingStoreError {
    pub fn new(place: impl Into<String>, source: impl Into<BoxError>) -> Self {
        MappingStoreError {
            place: place.into(),
            source: source.into(),
        }
    }
}

/// Where a mapping's versions live.
pub trait MappingStore: Send + Sync {
    /// Where it is, for messages (`s3://bucket/key`, a path).
    fn place(&self) -> String;
    /// A mark that changes when the live version does, cheaper to read than the
    /// text (an ETag, a file's stamp); `None` when nothing is published.
    fn mark(&self) -> impl Future<Output = Result<Option<String>, MappingStoreError>> + Send;
    /// The live version, `None` when nothing is published.
    fn live(&self) -> impl Future<Output = Result<Option<Published>, MappingStoreError>> + Send;
    /// The versions published, newest first, at most `limit`.
    fn history(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Listed>, MappingStoreError>> + Send;
    /// A published version by its name or the start of it (at least 4 characters).
    fn read(
        &self,
        version: &str,
    ) -> impl Future<Output = Result<Option<Published>, MappingStoreError>> + Send;
    /// Makes `text` the live version; the checks are the caller's.
    fn publish(&self, text: &str)
    -> impl Future<Output = Result<Listed, MappingStoreError>> + Send;
}

/// Whether `version` names `listed`: the whole name or the start of it.
pub fn names(version: &str, listed: &Listed) -> bool {
    version.len() >= 4 && listed.version.starts_with(version)
}

#[cfg(any(test, feature = "test-util"))]
pub use memory::MemoryMappings;

#[cfg(any(test, feature = "test-util"))]
mod memory {
    use std::sync::Mutex;

    use chrono::Utc;

    use super::{Listed, MappingStore, MappingStoreError, Published, names};

    /// Versions in memory, newest last; the live one is the last.
    #[derive(Debug, Default)]
    pub struct MemoryMappings {
        versions: Mutex<Vec<Published>>,
        /// Reads fail while set: the store is down.
        pub down: std::sync::atomic::AtomicBool,
    }

    impl MemoryMappings {
        fn versions(&self) -> Result<std::sync::MutexGuard<'_, Vec<Published>>, MappingStoreError> {
            if self.down.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(MappingStoreError::new("memory", "the store is down"));
            }
            Ok(self.versions.lock().unwrap_or_else(|p| p.into_inner()))
        }
    }

    impl MappingStore for MemoryMappings {
        fn place(&self) -> String {
            "memory".into()
        }

        async fn mark(&self) -> Result<Option<String>, MappingStoreError> {
            Ok(self.versions()?.len().checked_sub(1).map(|n| n.to_string()))
        }

        async fn live(&self) -> Result<Option<Published>, MappingStoreError> {
            Ok(self.versions()?.last().cloned())
        }

        async fn history(&self, limit: usize) -> Result<Vec<Listed>, MappingStoreError> {
            let versions = self.versions()?;
            Ok(versions
                .iter()
                .rev()
                .take(limit)
                .map(|p| p.listed.clone())
                .collect())
        }

        async fn read(&self, version: &str) -> Result<Option<Published>, MappingStoreError> {
            let versions = self.versions()?;
            Ok(versions
                .iter()
                .rev()
                .find(|p| names(version, &p.listed))
                .cloned())
        }

        async fn publish(&self, text: &str) -> Result<Listed, MappingStoreError> {
            let published = Published::new(text.to_owned(), Some(Utc::now()));
            let listed = published.listed.clone();
            self.versions()?.push(published);
            Ok(listed)
        }
    }
}
