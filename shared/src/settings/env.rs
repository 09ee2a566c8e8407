//! Reading variables: each problem is collected, naming the variable, and all are
//! reported together.

use std::path::Path;
use std::time::Duration;

use super::{GhlBudget, MappingSettings, PublishedAt};
use crate::capi::client::DEFAULT_API_VERSION as DEFAULT_GRAPH_VERSION;
use crate::hold::HoldPolicy;
use crate::mapping::Mapping;
use crate::pull::reconcile::ReconcileSettings;

/// What is wrong with the configuration, one line per variable.
#[derive(Debug, thiserror::Error)]
#[error("the configuration is not usable:\n  {}", .0.join("\n  "))]
pub struct SettingsError(pub Vec<String>);

/// Reads variables and collects what is missing or wrong.
pub struct Env<F> {
    pub(super) lookup: F,
    problems: Vec<String>,
}

impl<F> std::fmt::Debug for Env<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("problems", &self.problems)
            .finish_non_exhaustive()
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// `lookup` is usually `|name| std::env::var(name).ok()`.
    pub fn new(lookup: F) -> Self {
        Env {
            lookup,
            problems: Vec::new(),
        }
    }

    /// The variable's value; blank counts as unset.
    pub fn optional(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The value, or a problem recorded (and an empty string).
    pub fn required(&mut self, name: &str, what: &str) -> String {
        self.optional(name).unwrap_or_else(|| {
            self.problems.push(format!("{name} is not set: {what}"));
            String::new()
        })
    }

    pub fn or(&self, name: &str, default: &str) -> String {
        self.optional(name).unwrap_or_else(|| default.to_owned())
    }

    /// `name` as `true` or `false` (absent: false); anything else is a problem.
    pub fn flag(&mut self, name: &str) -> bool {
        match self.optional(name).as_deref().map(str::trim) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                self.problems
                    .push(format!("{name} must be true or false, not {other:?}"));
                false
            }
        }
    }

    /// A whole number of seconds.
    pub fn seconds(&mut self, name: &str, default: u64) -> Duration {
        match self.optional(name).map(|v| v.parse::<u64>()) {
            None => Duration::from_secs(default),
            Some(Ok(secs)) if secs > 0 => Duration::from_secs(secs),
            Some(_) => {
                self.problems
                    .push(format!("{name} must be a positive whole number of seconds"));
                Duration::from_secs(default)
            }
        }
    }

    /// A positive whole number.
    pub fn number(&mut self, name: &str, default: u64) -> u64 {
        match self.optional(name).map(|v| v.parse::<u64>()) {
            None => default,
            Some(Ok(n)) if n > 0 => n,
            Some(_) => {
                self.problems
                    .push(format!("{name} must be a positive whole number"));
                default
            }
        }
    }

    /// How held work waits, and for how long at most: `HOLD_BASE_MS`,
    /// `HOLD_CAP_SECONDS`, `HOLD_PROBE_CAP_MS`, `HOLD_OUTAGE_SECONDS`, `HOLD_TOKEN_SECONDS` (tests scale
    /// hours into seconds with them).
    pub fn hold_policy(&mut self) -> HoldPolicy {
        let defaults = HoldPolicy::default();
        let seconds = |d: Duration| d.as_secs();
        let policy = HoldPolicy {
            base: Duration::from_millis(
                self.number("HOLD_BASE_MS", defaults.base.as_millis() as u64),
            ),
            cap: self.seconds("HOLD_CAP_SECONDS", seconds(defaults.cap)),
            outage_limit: self.seconds("HOLD_OUTAGE_SECONDS", seconds(defaults.outage_limit)),
            token_limit: self.seconds("HOLD_TOKEN_SECONDS", seconds(defaults.token_limit)),
            gap_limit: self.seconds("HOLD_GAP_SECONDS", seconds(defaults.gap_limit)),
            probe_cap: Duration::from_millis(
                self.number("HOLD_PROBE_CAP_MS", defaults.probe_cap.as_millis() as u64),
            ),
        };
        if policy.base > policy.cap {
            self.problems
                .push("HOLD_BASE_MS must not be longer than HOLD_CAP_SECONDS".into());
        }
        policy
    }

    /// How GHL's budget is spent: `GHL_ENRICHMENT_SHARE_PERCENT` (1 to 100,
    /// default 80) and `GHL_CONTACT_CACHE_SECONDS` (default 60, 0 for none).
    pub fn ghl_budget(&mut self) -> GhlBudget {
        let defaults = GhlBudget::default();
        let share = self.number(
            "GHL_ENRICHMENT_SHARE_PERCENT",
            (defaults.enrichment_share * 100.0).round() as u64,
        );
        if share > 100 {
            self.problems
                .push("GHL_ENRICHMENT_SHARE_PERCENT must be at most 100".into());
        }
        let cache = match self
            .optional("GHL_CONTACT_CACHE_SECONDS")
            .map(|v| v.parse())
        {
            None => defaults.contact_cache,
            Some(Ok(seconds)) => Duration::from_secs(seconds),
            Some(Err(_)) => {
                self.problems
                    .push("GHL_CONTACT_CACHE_SECONDS must be a whole number of seconds".into());
                defaults.contact_cache
            }
        };
        GhlBudget {
            enrichment_share: share.min(100) as f64 / 100.0,
            contact_cache: cache,
        }
    }

    /// How reconciliation runs: `RECONCILE_SHARE_PERCENT` of GHL's budget per
    /// location (default 20), `GHL_RATE_LIMIT_REQUESTS` per
    /// `GHL_RATE_LIMIT_WINDOW_MS` (GHL's 100 per 10,000), each listing
    /// `RECONCILE_OVERLAP_SECONDS` before the watermark (default 600).
    pub fn reconcile(&mut self) -> ReconcileSettings {
        let defaults = ReconcileSettings::default();
        let share = self.number("RECONCILE_SHARE_PERCENT", 20);
        if share > 100 {
            self.problems
                .push("RECONCILE_SHARE_PERCENT must be at most 100".into());
        }
        let requests = self.number("GHL_RATE_LIMIT_REQUESTS", u64::from(defaults.budget.0));
        let window = self.number(
            "GHL_RATE_LIMIT_WINDOW_MS",
            defaults.budget.1.as_millis() as u64,
        );
        ReconcileSettings {
            share: share.min(100) as f64 / 100.0,
            budget: (
                u32::try_from(requests).unwrap_or(u32::MAX),
                Duration::from_millis(window),
            ),
            overlap: self.seconds("RECONCILE_OVERLAP_SECONDS", defaults.overlap.as_secs()),
            patience: defaults.patience,
            // As the mapping says: set by whoever holds it.
            opportunities: defaults.opportunities,
        }
    }

    /// Records `result`'s error, if any.
    pub fn check<T, E: std::fmt::Display>(&mut self, result: Result<T, E>) -> Option<T> {
        result.map_err(|e| self.problems.push(e.to_string())).ok()
    }

    /// The mapping: `MAPPING_FILE` (a path), else `MAPPING_TOML` (the text itself),
    /// else the built-in one. Events need somewhere to go: a mapping without pixels
    /// is refused.
    pub fn mapping(&mut self) -> Option<Mapping> {
        let mapping = self.configured_mapping()?;
        if mapping.pixels.is_empty() {
            self.problems.push(
                "the mapping names no pixel: set MAPPING_FILE or MAPPING_TOML to a mapping with [[pixels]]"
                    .into(),
            );
            return None;
        }
        Some(mapping)
    }

    /// As [`Env::mapping`], pixels or not.
    fn configured_mapping(&mut self) -> Option<Mapping> {
        Some(
            match (self.optional("MAPPING_FILE"), self.optional("MAPPING_TOML")) {
                (Some(path), _) => self.check(Mapping::load(Path::new(&path)))?,
                (None, Some(text)) => self.check(Mapping::parse(&text, "MAPPING_TOML"))?,
                (None, None) => Mapping::builtin(),
            },
        )
    }

    /// The mapping and where newer versions of it are published: `MAPPING_BUCKET`
    /// and `MAPPING_KEY` (default `mapping.toml`), looked at every
    /// `MAPPING_REFRESH_SECONDS` (default 30). Until one is published, the
    /// configured one ([`Env::mapping`]) runs, if it names a pixel.
    pub fn live_mapping(&mut self) -> Option<MappingSettings> {
        let published = self.optional("MAPPING_BUCKET").map(|bucket| PublishedAt {
            bucket,
            key: self.or("MAPPING_KEY", "mapping.toml"),
        });
        let configured = match published {
            Some(_) => self.configured_mapping(),
            None => self.mapping(),
        };
        let every = self.seconds(
            "MAPPING_REFRESH_SECONDS",
            crate::mapping::live::DEFAULT_EVERY.as_secs(),
        );
        Some(MappingSettings {
            configured: configured?,
            published,
            every,
        })
    }

    /// `GRAPH_API_VERSION`, checked to look like `v26.0`.
    pub fn capi_version(&mut self) -> String {
        let version = self.or("GRAPH_API_VERSION", DEFAULT_GRAPH_VERSION);
        if !is_api_version(&version) {
            self.problems.push(format!(
                "GRAPH_API_VERSION must look like {DEFAULT_GRAPH_VERSION}, not {version:?}"
            ));
        }
        version
    }

    /// Done: the value built, or every problem found.
    pub fn finish<T>(self, value: impl FnOnce() -> Option<T>) -> Result<T, SettingsError> {
        match (self.problems.is_empty(), value()) {
            (true, Some(value)) => Ok(value),
            _ => Err(SettingsError(self.problems)),
        }
    }
}

pub(super) fn is_api_version(v: &str) -> bool {
    v.strip_prefix('v')
        .and_then(|n| n.split_once('.'))
        .is_some_and(|(major, minor)| {
            [major, minor]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
}
