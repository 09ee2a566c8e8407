//! The mapping store in local mode: the file `serve --mapping` runs (edited by
//! hand or published to), and beside it a history of the versions published,
//! one file each, named by when and by its digest.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ghl_capi::mapping::live::{LiveMapping, StartError};
use ghl_capi::ports::mappings::{
    Listed, MappingStore, MappingStoreError, Published, names, version_of,
};

/// The mapping `serve` runs: `file`'s, looked at again every `every`, or
/// `configured` (the demo mapping) for good.
pub async fn running(
    file: Option<&Path>,
    every: std::time::Duration,
    configured: &ghl_capi::mapping::Mapping,
) -> Result<LiveMapping<FileMappings>, StartError> {
    Ok(match file {
        Some(file) => {
            LiveMapping::start(FileMappings::new(file), every, configured.clone()).await?
        }
        None => LiveMapping::fixed(configured.clone()),
    })
}

/// A mapping file and its history (`<file>.history/`).
#[derive(Debug, Clone)]
pub struct FileMappings {
    live: PathBuf,
    history: PathBuf,
}

impl FileMappings {
    pub fn new(live: &Path) -> Self {
        let mut history = live.as_os_str().to_owned();
        history.push(".history");
        FileMappings {
            live: live.to_owned(),
            history: PathBuf::from(history),
        }
    }

    fn failed(&self, e: std::io::Error) -> MappingStoreError {
        MappingStoreError::new(self.place(), e)
    }

    /// The history's versions, newest first, with their files.
    fn versions(&self) -> Result<Vec<(PathBuf, Listed)>, MappingStoreError> {
        let entries = match std::fs::read_dir(&self.history) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.failed(e)),
        };
        let mut versions = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| self.failed(e))?.path();
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            // `<milliseconds>-<version>.toml`
            let Some((millis, version)) = stem.split_once('-') else {
                continue;
            };
            let at = millis
                .parse::<i64>()
                .ok()
                .and_then(DateTime::<Utc>::from_timestamp_millis);
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let listed = Listed {
                version: version.to_owned(),
                at,
                size: usize::try_from(size).unwrap_or(usize::MAX),
            };
            versions.push((path, listed));
        }
        versions.sort_by_key(|(_, l)| std::cmp::Reverse(l.at));
        Ok(versions)
    }

    /// Keeps `text` in the history, stamped `at` or, to keep the order it was
    /// kept in, just after the newest there (a clock is coarser than a publish).
    fn keep(&self, text: &str, version: &str, at: DateTime<Utc>) -> Result<(), MappingStoreError> {
        let newest = self.versions()?.first().and_then(|(_, l)| l.at);
        let after = newest.map(|n| n + chrono::Duration::milliseconds(1));
        let at = after.map_or(at, |after| at.max(after));
        let kept = self
            .history
            .join(format!("{}-{version}.toml", at.timestamp_millis()));
        std::fs::write(&kept, text).map_err(|e| self.failed(e))
    }

    fn text(&self) -> Result<Option<String>, MappingStoreError> {
        match std::fs::read_to_string(&self.live) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.failed(e)),
        }
    }
}

impl MappingStore for FileMappings {
    fn place(&self) -> String {
        self.live.display().to_string()
    }

    async fn mark(&self) -> Result<Option<String>, MappingStoreError> {
        Ok(self.text()?.map(|text| version_of(&text)))
    }

    async fn live(&self) -> Result<Option<Published>, MappingStoreError> {
        let modified = std::fs::metadata(&self.live)
            .and_then(|m| m.modified())
            .ok()
            .map(DateTime::<Utc>::from);
        Ok(self.text()?.map(|text| Published::new(text, modified)))
    }

    async fn history(&self, limit: usize) -> Result<Vec<Listed>, MappingStoreError> {
        let versions = self.versions()?;
        Ok(versions.into_iter().take(limit).map(|(_, l)| l).collect())
    }

    async fn read(&self, version: &str) -> Result<Option<Published>, MappingStoreError> {
        if let Some(live) = self.live().await?
            && names(version, &live.listed)
        {
            return Ok(Some(live));
        }
        let versions = self.versions()?;
        let Some((path, listed)) = versions.into_iter().find(|(_, l)| names(version, l)) else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|e| self.failed(e))?;
        Ok(Some(Published::new(text, listed.at)))
    }

    async fn publish(&self, text: &str) -> Result<Listed, MappingStoreError> {
        let now = Utc::now();
        let version = version_of(text);
        std::fs::create_dir_all(&self.history).map_err(|e| self.failed(e))?;
        // The file as it ran before its first publish (or since a hand edit) is a
        // version too: kept, so a rollback can return to it.
        if let Some(live) = self.live().await?
            && !self
                .versions()?
                .iter()
                .any(|(_, l)| l.version == live.listed.version)
        {
            self.keep(
                &live.text,
                &live.listed.version,
                live.listed.at.unwrap_or(now),
            )?;
        }
        self.keep(text, &version, now)?;
        // Whole or not at all: `serve` never reads half a file.
        let mut partial = self.live.as_os_str().to_owned();
        partial.push(".publishing");
        std::fs::write(&partial, text).map_err(|e| self.failed(e))?;
        std::fs::rename(&partial, &self.live).map_err(|e| self.failed(e))?;
        Ok(Listed {
            version,
            at: Some(now),
            size: text.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn published_versions_are_kept_and_read_back_by_the_start_of_their_name() {
        let dir = tempfile::tempdir().expect("dir");
        let store = FileMappings::new(&dir.path().join("mapping.toml"));
        assert_eq!(store.live().await.expect("live"), None);
        assert_eq!(store.history(10).await.expect("history"), vec![]);
        assert_eq!(store.mark().await.expect("mark"), None);
        let one = store.publish("# one\n").await.expect("publish");
        std::thread::sleep(std::time::Duration::from_millis(5));
        let two = store.publish("# two\n").await.expect("publish");
        let live = store.live().await.expect("live").expect("published");
        assert_eq!(
            (live.text.as_str(), &live.listed.version),
            ("# two\n", &two.version)
        );
        let history = store.history(10).await.expect("history");
        let names: Vec<_> = history.iter().map(|l| l.version.as_str()).collect();
        assert_eq!(names, [two.version.as_str(), one.version.as_str()]);
        let old = store
            .read(&one.version[..6])
            .await
            .expect("read")
            .expect("found");
        assert_eq!(old.text, "# one\n");
        assert_eq!(
            store.read("abc").await.expect("read"),
            None,
            "too short to name one"
        );
        // Edited by hand: the mark follows the file, and the next publish keeps
        // the edit as a version of its own.
        std::fs::write(dir.path().join("mapping.toml"), "# three\n").expect("write");
        assert_eq!(
            store.mark().await.expect("mark"),
            Some(version_of("# three\n"))
        );
        store.publish("# four\n").await.expect("publish");
        let history = store.history(10).await.expect("history");
        let names: Vec<_> = history.iter().map(|l| l.version.clone()).collect();
        assert_eq!(
            names,
            [
                version_of("# four\n"),
                version_of("# three\n"),
                two.version,
                one.version
            ]
        );
    }
}
