//! The mapping as it runs: the live version of a [`MappingStore`], read at start
//! and looked at again every so often, so a published version reaches a warm
//! function or `serve` without a restart. A version that does not pass the
//! checks never runs: the running one stays, and says why.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{ConfigError, Mapping};
use crate::error::chain;
use crate::ports::mappings::{MappingStore, MappingStoreError};

/// How often a running stage looks for a new version unless told: inside the
/// minute a publish promises.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(30);

/// Why a mapping text cannot run.
#[derive(Debug, thiserror::Error)]
pub enum Unrunnable {
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error("{0}: the mapping names no pixel, so its events would have nowhere to go")]
    NoPixel(String),
}

/// The checks a version passes before it runs: `mapping check`'s, and a pixel.
pub fn check(text: &str, name: &str) -> Result<Mapping, Unrunnable> {
    let mapping = Mapping::parse(text, name)?;
    if mapping.pixels.is_empty() {
        return Err(Unrunnable::NoPixel(name.to_owned()));
    }
    Ok(mapping)
}

/// A version that was not taken, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub version: String,
    pub why: String,
}

/// The store's live version could not be started on.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] MappingStoreError),
    #[error("no version of the mapping in {place} passes the checks; the newest: {why}")]
    NoneRuns { place: String, why: String },
    #[error(
        "no mapping is published in {0} yet, and none configured names a pixel: publish one (ghl-capi mapping publish --aws); the queues keep the work meanwhile"
    )]
    NothingPublished(String),
}

/// The running mapping, and where newer versions come from.
#[derive(Debug)]
pub struct LiveMapping<S> {
    store: Option<S>,
    every: Duration,
    state: Mutex<Running>,
}

#[derive(Debug)]
struct Running {
    mapping: Arc<Mapping>,
    /// The store's mark when it was last read.
    mark: Option<String>,
    looked: Instant,
    refused: Option<Refusal>,
}

impl<S> LiveMapping<S> {
    /// `mapping`, for good: no store is looked at.
    pub fn fixed(mapping: Mapping) -> Self {
        LiveMapping {
            store: None,
            every: Duration::MAX,
            state: Mutex::new(Running {
                mapping: Arc::new(mapping),
                mark: None,
                looked: Instant::now(),
                refused: None,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, Running> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The mapping running now, without looking for a newer one.
    pub fn running(&self) -> Arc<Mapping> {
        self.state().mapping.clone()
    }

    /// The last version refused, while no newer one was taken.
    pub fn refused(&self) -> Option<Refusal> {
        self.state().refused.clone()
    }
}

impl<S: MappingStore> LiveMapping<S> {
    /// The store's live version, looked at again every `every`; `fallback` while
    /// nothing is published. A live version that does not pass (written past
    /// `mapping publish`) is refused, and the newest one before it that passes
    /// runs instead.
    pub async fn start(store: S, every: Duration, fallback: Mapping) -> Result<Self, StartError> {
        let mark = store.mark().await?;
        let (mapping, refused) = match store.live().await? {
            None if fallback.pixels.is_empty() => {
                return Err(StartError::NothingPublished(store.place()));
            }
            None => {
                tracing::warn!(
                    store = store.place(),
                    version = fallback.version,
                    "no mapping is published yet: the one configured runs until one is (ghl-capi mapping publish)"
                );
                (fallback, None)
            }
            Some(live) => match check(&live.text, &store.place()) {
                Ok(mapping) => (mapping, None),
                Err(why) => {
                    let refusal = Refusal {
                        version: live.listed.version,
                        why: chain(&why),
                    };
                    say_refused(&store.place(), &refusal);
                    (newest_that_runs(&store, &refusal).await?, Some(refusal))
                }
            },
        };
        tracing::info!(
            version = mapping.version,
            store = store.place(),
            "mapping running"
        );
        Ok(LiveMapping {
            store: Some(store),
            every,
            state: Mutex::new(Running {
                mapping: Arc::new(mapping),
                mark,
                looked: Instant::now(),
                refused,
            }),
        })
    }

    /// The mapping to build or send with now: a newer published version when one
    /// is due to be looked for and passes. A store that cannot be read leaves the
    /// running one, said and counted.
    pub async fn current(&self) -> Arc<Mapping> {
        let Some(store) = &self.store else {
            return self.running();
        };
        let known = {
            let mut state = self.state();
            if state.looked.elapsed() < self.every {
                return state.mapping.clone();
            }
            // Looked for by one caller at a time; the others keep the running one.
            state.looked = Instant::now();
            state.mark.clone()
        };
        if let Err(e) = self.look(store, known).await {
            tracing::warn!(store = store.place(), error = %chain(&e), "cannot look for a new mapping version: the running one stays");
            crate::telemetry::mapping_version("unreadable");
        }
        self.running()
    }

    async fn look(&self, store: &S, known: Option<String>) -> Result<(), MappingStoreError> {
        let mark = store.mark().await?;
        if mark.is_none() || mark == known {
            return Ok(());
        }
        let Some(live) = store.live().await? else {
            return Ok(());
        };
        let mut state = self.state();
        state.mark = mark;
        if live.listed.version == state.mapping.version {
            return Ok(());
        }
        match check(&live.text, &store.place()) {
            Ok(mapping) => {
                tracing::info!(
                    version = mapping.version,
                    was = state.mapping.version,
                    "a new mapping version runs"
                );
                crate::telemetry::mapping_version("taken");
                state.mapping = Arc::new(mapping);
                state.refused = None;
            }
            Err(why) => {
                let refusal = Refusal {
                    version: live.listed.version,
                    why: chain(&why),
                };
                say_refused(&store.place(), &refusal);
                state.refused = Some(refusal);
            }
        }
        Ok(())
    }
}

fn say_refused(place: &str, refusal: &Refusal) {
    tracing::error!(
        store = place,
        version = refusal.version,
        why = refusal.why,
        "a mapping version does not pass its checks: it does not run"
    );
    crate::telemetry::mapping_version("refused");
}

/// The newest published version that passes, for a start whose live one does not.
async fn newest_that_runs<S: MappingStore>(
    store: &S,
    refusal: &Refusal,
) -> Result<Mapping, StartError> {
    for listed in store.history(20).await? {
        if listed.version == refusal.version {
            continue;
        }
        if let Some(published) = store.read(&listed.version).await?
            && let Ok(mapping) = check(&published.text, &store.place())
        {
            return Ok(mapping);
        }
    }
    Err(StartError::NoneRuns {
        place: store.place(),
        why: refusal.why.clone(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::ports::mappings::MemoryMappings;

    const ONE: &str = r#"
[[pixels]]
name = "main"
dataset_id = "111"
access_token = { env = "T" }

[[rules]]
name = "lead"
trigger = "contact.created"
event_name = "Lead"
"#;

    fn two() -> String {
        ONE.replace("\"Lead\"", "\"CompleteRegistration\"")
    }

    fn event_name(mapping: &Mapping) -> String {
        match &mapping.rules[0].event_name {
            super::super::Source::Constant(v) => v.as_str().unwrap_or_default().to_owned(),
            other => format!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_published_version_runs_once_due_and_one_that_fails_its_checks_never_does() {
        let store = MemoryMappings::default();
        store.publish(ONE).await.expect("publish");
        let fallback = Mapping::builtin();
        let live = LiveMapping::start(store, Duration::ZERO, fallback)
            .await
            .expect("start");
        assert_eq!(event_name(&*live.current().await), "Lead");
        let store = live.store.as_ref().expect("store");
        store.publish(&two()).await.expect("publish");
        let now = live.current().await;
        assert_eq!(event_name(&now), "CompleteRegistration");
        assert_eq!(now.version, crate::ports::mappings::version_of(&two()));

        // Broken, then without a pixel: neither runs, and the refusal says why.
        store
            .publish("[[rules]]\nname = 1\n")
            .await
            .expect("publish");
        assert_eq!(live.current().await.version, now.version);
        let refused = live.refused().expect("refused");
        assert!(refused.why.contains("memory"), "{refused:?}");
        store.publish("").await.expect("publish");
        assert_eq!(live.current().await.version, now.version);
        assert!(live.refused().expect("refused").why.contains("no pixel"));

        // A store that cannot be read leaves the running one.
        store.down.store(true, Ordering::Relaxed);
        assert_eq!(live.current().await.version, now.version);
        store.down.store(false, Ordering::Relaxed);
        store.publish(ONE).await.expect("publish");
        assert_eq!(event_name(&*live.current().await), "Lead");
        assert_eq!(live.refused(), None);
    }

    #[tokio::test]
    async fn a_version_is_looked_for_only_when_due() {
        let store = MemoryMappings::default();
        store.publish(ONE).await.expect("publish");
        let live = LiveMapping::start(store, Duration::from_secs(3600), Mapping::builtin())
            .await
            .expect("start");
        live.store
            .as_ref()
            .expect("store")
            .publish(&two())
            .await
            .expect("publish");
        assert_eq!(event_name(&*live.current().await), "Lead", "not due yet");
    }

    #[tokio::test]
    async fn a_start_runs_the_fallback_until_one_is_published_and_skips_a_broken_live_one() {
        let err = LiveMapping::start(
            MemoryMappings::default(),
            Duration::ZERO,
            Mapping::builtin(),
        )
        .await
        .expect_err("the built-in mapping names no pixel");
        assert!(err.to_string().contains("publish one"), "{err}");
        let fallback = Mapping::parse(&two(), "configured").expect("valid");
        let live = LiveMapping::start(MemoryMappings::default(), Duration::ZERO, fallback)
            .await
            .expect("start");
        assert_eq!(event_name(&live.running()), "CompleteRegistration");
        live.store
            .as_ref()
            .expect("store")
            .publish(ONE)
            .await
            .expect("publish");
        assert_eq!(event_name(&*live.current().await), "Lead");

        let store = MemoryMappings::default();
        store.publish(ONE).await.expect("publish");
        store.publish("not toml [").await.expect("publish");
        let live = LiveMapping::start(store, Duration::ZERO, Mapping::builtin())
            .await
            .expect("start");
        assert_eq!(
            event_name(&live.running()),
            "Lead",
            "the newest that passes"
        );
        assert!(live.refused().is_some());

        let store = MemoryMappings::default();
        store.publish("not toml [").await.expect("publish");
        let err = LiveMapping::start(store, Duration::ZERO, Mapping::builtin())
            .await
            .expect_err("nothing runs");
        assert!(err.to_string().contains("no version"), "{err}");
    }
}
