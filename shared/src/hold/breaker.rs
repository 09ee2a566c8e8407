//! Circuit breakers, one per pixel (Meta) or location (GHL), kept in the state
//! store so every worker sees them. After [`OPEN_AFTER`] failures in a row (so a
//! partner failing now and then pauses nothing), the breaker is open: no work is
//! sent to it but one probe per interval (the interval growing as held work's
//! waits do, but never past [`HoldPolicy::probe_cap`]); the first success closes
//! it and everything held resumes.
//!
//! A breaker that cannot be read is taken as closed (the partner is tried, and a
//! failure then holds the work as usual); one that cannot be written is logged.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{HoldPolicy, Partner};
use crate::error::chain;
use crate::ports::state::StateStore;

/// Failures in a row that open a breaker.
pub const OPEN_AFTER: u32 = 3;

/// A breaker that has seen failures, as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breaker {
    pub opened_at: DateTime<Utc>,
    /// Failed tries since it opened.
    pub failures: u32,
    /// Work may go again (as a probe) from this time.
    pub next_probe: DateTime<Utc>,
    /// The last failure's code and cause.
    pub code: String,
    pub cause: String,
}

/// Whether work may go to the partner now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Go,
    /// Held until `until`, for the breaker's last failure.
    Paused {
        until: DateTime<Utc>,
        code: &'static str,
        cause: String,
    },
}

/// The breakers of one partner, as one batch sees them: each read at most once,
/// and written when it changes.
pub struct Breakers<'s, S> {
    state: &'s S,
    policy: HoldPolicy,
    partner: Partner,
    seen: HashMap<String, Option<Breaker>>,
}

impl<S> std::fmt::Debug for Breakers<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breakers")
            .field("partner", &self.partner)
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

impl<'s, S: StateStore> Breakers<'s, S> {
    pub fn new(state: &'s S, policy: HoldPolicy, partner: Partner) -> Self {
        Breakers {
            state,
            policy,
            partner,
            seen: HashMap::new(),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("breaker#{}#{name}", self.partner.name())
    }

    async fn current(&mut self, name: &str) -> Option<Breaker> {
        if let Some(known) = self.seen.get(name) {
            return known.clone();
        }
        let breaker = match self.state.record(&self.key(name)).await {
            Ok(text) => text.and_then(|t| serde_json::from_str(&t).ok()),
            Err(e) => {
                tracing::warn!(
                    partner = self.partner.name(),
                    name,
                    error = %chain(&e),
                    "cannot read the breaker; trying the partner"
                );
                None
            }
        };
        self.seen.insert(name.to_owned(), breaker.clone());
        breaker
    }

    /// Whether work for `name` may go to the partner at `now`: always while its
    /// breaker is closed, and as a probe once its interval has passed.
    pub async fn gate(&mut self, name: &str, now: DateTime<Utc>) -> Gate {
        match self.current(name).await {
            Some(b) if b.failures >= OPEN_AFTER && now < b.next_probe => Gate::Paused {
                until: b.next_probe,
                code: self.partner.code(&b.code),
                cause: b.cause,
            },
            _ => Gate::Go,
        }
    }

    /// Whether `name`'s breaker has seen no failure since the partner last took
    /// its work.
    pub async fn clean(&mut self, name: &str) -> bool {
        self.current(name).await.is_none_or(|b| b.failures == 0)
    }

    /// The partner failed `name`'s work for a reason that holds it: one more
    /// failure in a row; at [`OPEN_AFTER`] the breaker opens (or stays open), its
    /// next probe one wait later.
    pub async fn failed(&mut self, name: &str, code: &str, cause: &str, now: DateTime<Utc>) {
        let opened = self.current(name).await;
        let failures = opened.as_ref().map_or(0, |b| b.failures) + 1;
        let open_for = opened.as_ref().map_or(Duration::ZERO, |b| {
            (now - b.opened_at).to_std().unwrap_or_default()
        });
        let tries = failures.saturating_sub(OPEN_AFTER) + 1;
        let wait = self.policy.probe_wait(tries, open_for, name);
        let breaker = Breaker {
            opened_at: opened.as_ref().map_or(now, |b| b.opened_at),
            failures,
            next_probe: now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX),
            code: code.to_owned(),
            cause: cause.to_owned(),
        };
        if failures == OPEN_AFTER {
            tracing::error!(
                partner = self.partner.name(),
                name,
                code,
                cause,
                alert = "partner_paused",
                "the partner is failing: its work is held, and tried again once per interval"
            );
            crate::telemetry::partner_paused(self.partner.name());
        }
        self.write(name, &breaker).await;
        self.seen.insert(name.to_owned(), Some(breaker));
    }

    /// The partner took `name`'s work: an open breaker closes, and what it held
    /// resumes as its waits end.
    pub async fn succeeded(&mut self, name: &str, now: DateTime<Utc>) {
        let Some(breaker) = self.current(name).await else {
            return;
        };
        let was_open = breaker.failures >= OPEN_AFTER;
        if let Err(e) = self.state.delete_record(&self.key(name)).await {
            tracing::warn!(partner = self.partner.name(), name, error = %chain(&e), "cannot close the breaker");
        }
        if was_open {
            tracing::warn!(
                partner = self.partner.name(),
                name,
                failures = breaker.failures,
                paused_seconds = (now - breaker.opened_at).num_seconds(),
                "the partner is back: held work resumes"
            );
        }
        self.seen.insert(name.to_owned(), None);
    }

    async fn write(&self, name: &str, breaker: &Breaker) {
        // Kept past the longest hold, so a breaker never outlives what it explains.
        let keep = self.policy.token_limit + Duration::from_secs(24 * 3600);
        let text = crate::ports::text(breaker);
        if let Err(e) = self.state.set_record(&self.key(name), &text, keep).await {
            tracing::warn!(partner = self.partner.name(), name, error = %chain(&e), "cannot write the breaker");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::state::MemoryState;

    #[tokio::test]
    async fn a_failing_partner_is_probed_once_per_interval_and_resumes_on_success() {
        let state = MemoryState::default();
        let policy = HoldPolicy {
            base: Duration::from_secs(10),
            ..HoldPolicy::default()
        };
        let now: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().expect("time");
        let mut breakers = Breakers::new(&state, policy, Partner::Meta);
        assert_eq!(breakers.gate("main", now).await, Gate::Go);
        for _ in 1..OPEN_AFTER {
            breakers
                .failed("main", "meta_unavailable", "503", now)
                .await;
            assert_eq!(
                breakers.gate("main", now).await,
                Gate::Go,
                "a failure now and then pauses nothing"
            );
        }
        breakers
            .failed("main", "meta_unavailable", "503", now)
            .await;
        let Gate::Paused { until, code, .. } = breakers.gate("main", now).await else {
            panic!("paused")
        };
        assert_eq!(code, "meta_unavailable");
        assert!(until > now && until <= now + chrono::Duration::seconds(10));
        assert_eq!(breakers.gate("other", now).await, Gate::Go, "per pixel");

        // Another worker sees it too, and probes once the interval has passed.
        let mut elsewhere = Breakers::new(&state, policy, Partner::Meta);
        assert!(matches!(
            elsewhere.gate("main", now).await,
            Gate::Paused { .. }
        ));
        assert_eq!(elsewhere.gate("main", until).await, Gate::Go);
        elsewhere
            .failed("main", "meta_unavailable", "503", until)
            .await;
        let Gate::Paused { until: later, .. } = elsewhere.gate("main", until).await else {
            panic!("paused again")
        };
        assert!(
            later - until <= chrono::Duration::seconds(10),
            "a tenth of 10 s open: the base"
        );
        // An hour into the outage, the interval has grown, to the probe cap at most.
        let hour = until + chrono::Duration::hours(1);
        elsewhere
            .failed("main", "meta_unavailable", "503", hour)
            .await;
        let Gate::Paused { until: next, .. } = elsewhere.gate("main", hour).await else {
            panic!("paused still")
        };
        let cap = chrono::Duration::from_std(policy.probe_cap).expect("cap");
        assert!(
            next - hour <= cap && next - hour >= cap * 3 / 4,
            "{:?}",
            next - hour
        );
        elsewhere.succeeded("main", later).await;
        assert_eq!(elsewhere.gate("main", later).await, Gate::Go);
        let mut fresh = Breakers::new(&state, policy, Partner::Meta);
        assert_eq!(
            fresh.gate("main", now).await,
            Gate::Go,
            "closed for everyone"
        );
    }
}
