//! Holding work through a partner's bad hour (or week): nothing a partner's outage
//! touches is ever dead-lettered for it.
//!
//! - Every failed try waits longer before the next: from [`HoldPolicy::base`],
//!   doubling, to at most [`HoldPolicy::cap`] (about 15 minutes: the longest delay
//!   SQS gives a message), each wait jittered (by up to a quarter) so held work does
//!   not return at once; but, through an outage, never longer than a twentieth of
//!   the time the work has been held ([`RELEASE_SHARE`]), so after a 10-minute
//!   outage everything held is back within a minute of the partner's return, and
//!   after five hours or more within the cap.
//! - While a partner keeps failing (three times in a row), a circuit breaker per
//!   pixel (Meta) or location (GHL) stops every try but one probe per interval
//!   ([`breaker`]), the interval on its own short cap ([`HoldPolicy::probe_cap`]);
//!   when the probe succeeds, all held work resumes as its waits end.
//! - An outage is held for [`HoldPolicy::outage_limit`] (4 days by default), a token
//!   or permission problem, which a person must fix, for
//!   [`HoldPolicy::token_limit`] (7 days). Only then does the work become a dead
//!   letter (`held_too_long`, with the last cause in words), kept for a redrive:
//!   long after the alarms said so, and before a queue's retention (14 days) or
//!   receive limit (1,000, [`HoldPolicy::receives_needed`]) could lose it.
//!
//! Only a permanent reason (Meta refusing an event, GHL not having the contact, a
//! body that is not a webhook) dead-letters at once.

pub mod breaker;

use std::hash::{Hash, Hasher};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::jobs::History;

/// How work is held: its waits and for how long at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldPolicy {
    /// The first retry's wait; each next one waits twice as long...
    pub base: Duration,
    /// ...up to this.
    pub cap: Duration,
    /// How long an outage (5xx, timeouts, throttling, our own queue or table) is held.
    pub outage_limit: Duration,
    /// How long a token or permission problem is held.
    pub token_limit: Duration,
    /// How long an audience change waits for an earlier one of its contact before
    /// the contact's current state is sent instead (the earlier one may be lost).
    pub gap_limit: Duration,
    /// The longest a paused partner waits for its next probe: held work's waits
    /// grow to spare the queues, the probe's stay short, so a partner's return is
    /// seen within this.
    pub probe_cap: Duration,
}

/// Work held through an outage waits at most this fraction (one in twenty) of the
/// time it has been held. Work that comes back just before the probe that finds
/// the partner back waits once more, so an outage of `T` drains within
/// [`HoldPolicy::probe_cap`] and `T / 20` of its end: 45 s after 10 minutes. Token
/// problems keep the doubling waits: a person fixes them, and a week of tries must
/// fit the queues' 1,000 receives.
pub const RELEASE_SHARE: u32 = 20;

impl Default for HoldPolicy {
    fn default() -> Self {
        HoldPolicy {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(15 * 60),
            outage_limit: Duration::from_secs(4 * 24 * 3600),
            token_limit: Duration::from_secs(7 * 24 * 3600),
            gap_limit: Duration::from_secs(3600),
            probe_cap: Duration::from_secs(15),
        }
    }
}

/// The codes of the partners' failures that hold work. They are metric dimensions
/// and kept in held work's history, so a bounded set; our own queue's or table's
/// failures (`state_store_failed`, …) are named where they happen, and hold as
/// outages.
pub mod code {
    /// Meta is down, busy, throttling or unreachable.
    pub const META_UNAVAILABLE: &str = "meta_unavailable";
    /// Meta refused a whole request: the token, a permission, the dataset.
    pub const META_REQUEST_REFUSED: &str = "meta_request_refused";
    /// Isolating a batch's invalid events took all the requests a batch may
    /// spend; the rest are sorted out in a later batch.
    pub const META_BATCH_UNSORTED: &str = "meta_batch_unsorted";
    /// The audience's whole list is being replaced: its own changes follow.
    pub const AUDIENCE_REPLACING: &str = "audience_replacing";
    pub use crate::ghl::reader::code::{
        APP_REFUSED as GHL_APP_REFUSED, BUDGET_RESERVED as GHL_BUDGET_RESERVED,
        NO_TOKEN as GHL_NO_TOKEN, RATE_LIMITED as GHL_RATE_LIMITED,
        UNAUTHORIZED as GHL_UNAUTHORIZED, UNAVAILABLE as GHL_UNAVAILABLE,
    };
}

/// Every partner failure code, with the kind of hold it makes.
const CODES: [(&str, Hold); 10] = [
    (code::META_UNAVAILABLE, Hold::Outage),
    (code::AUDIENCE_REPLACING, Hold::Outage),
    (code::META_REQUEST_REFUSED, Hold::Token),
    (code::META_BATCH_UNSORTED, Hold::Outage),
    (code::GHL_UNAVAILABLE, Hold::Outage),
    (code::GHL_RATE_LIMITED, Hold::Outage),
    (code::GHL_BUDGET_RESERVED, Hold::Outage),
    (code::GHL_UNAUTHORIZED, Hold::Token),
    (code::GHL_NO_TOKEN, Hold::Token),
    (code::GHL_APP_REFUSED, Hold::Token),
];

/// What kind of trouble holds work, by the failure's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The partner (or our own queue or table) is down or throttling.
    Outage,
    /// A token or permission is refused: a person must fix it.
    Token,
}

impl Hold {
    /// The kind of a failure code.
    pub fn of(code: &str) -> Hold {
        CODES
            .iter()
            .find(|(known, _)| *known == code)
            .map_or(Hold::Outage, |(_, hold)| *hold)
    }
}

/// A partner whose failures hold work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partner {
    Meta,
    Ghl,
}

impl Partner {
    /// Its name in logs, metrics and state keys.
    pub fn name(self) -> &'static str {
        match self {
            Partner::Meta => "meta",
            Partner::Ghl => "ghl",
        }
    }

    /// A stored failure code of this partner as the code it is (`unavailable`
    /// for one this build does not know).
    pub fn code(self, stored: &str) -> &'static str {
        let prefix = self.name();
        CODES
            .iter()
            .map(|(known, _)| *known)
            .find(|known| *known == stored && known.starts_with(prefix))
            .unwrap_or(match self {
                Partner::Meta => code::META_UNAVAILABLE,
                Partner::Ghl => code::GHL_UNAVAILABLE,
            })
    }
}

impl HoldPolicy {
    /// The wait before try `attempt + 1`, after `attempt` failures (1 or more):
    /// doubling from `base`, at most `cap`, and jittered by `key` (between three
    /// quarters and all of it) so work held together does not come back together.
    pub fn wait(&self, attempt: u32, key: &str) -> Duration {
        jittered(self.full_wait(attempt), key, attempt)
    }

    /// The wait of work held through an outage for `held_for` after `attempt`
    /// failures: as [`HoldPolicy::wait`], but at most a [`RELEASE_SHARE`]th of the
    /// time held (never under `base`), so it is back soon after its partner is.
    pub fn wait_held(&self, attempt: u32, held_for: Duration, key: &str) -> Duration {
        jittered(self.held_wait(attempt, held_for), key, attempt)
    }

    /// When a paused partner is probed next, after `failures` since its breaker
    /// opened `open_for` ago: as held work waits, at most [`HoldPolicy::probe_cap`].
    pub fn probe_wait(&self, failures: u32, open_for: Duration, key: &str) -> Duration {
        self.wait_held(failures, open_for, key).min(self.probe_cap)
    }

    /// [`HoldPolicy::wait_held`] before its jitter.
    fn held_wait(&self, attempt: u32, held_for: Duration) -> Duration {
        let share = (held_for / RELEASE_SHARE).max(self.base);
        self.full_wait(attempt).min(share)
    }

    fn full_wait(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        self.base
            .checked_mul(1 << doublings)
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// How long work held by a failure of `code` may be held.
    pub fn limit(&self, code: &str) -> Duration {
        match Hold::of(code) {
            Hold::Outage => self.outage_limit,
            Hold::Token => self.token_limit,
        }
    }

    /// Whether work with `history` has been held as long as its last failure allows.
    pub fn expired(&self, history: &History, now: DateTime<Utc>) -> bool {
        let limit = self.limit(history.last_code.as_deref().unwrap_or_default());
        let limit = chrono::Duration::from_std(limit).unwrap_or(chrono::Duration::MAX);
        history.held_for(now) >= limit
    }

    /// The most receives a queue must allow a message held for the longest limit:
    /// each wait at its shortest, counted until the limit.
    pub fn receives_needed(&self) -> u32 {
        let receives = |limit: Duration, wait: &dyn Fn(u32, Duration) -> Duration| {
            let (mut held, mut receives) = (Duration::ZERO, 1);
            while held < limit {
                held += shortest(wait(receives, held));
                receives += 1;
            }
            receives
        };
        let outage = receives(self.outage_limit, &|n, held| self.held_wait(n, held));
        let token = receives(self.token_limit, &|n, _| self.full_wait(n));
        outage.max(token)
    }
}

/// What becomes of work that failed for a reason that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Try again after this wait.
    Wait(Duration),
    /// Held as long as its failure allows: it becomes a letter, with why.
    GiveUp { reason: String },
}

/// The code of a letter for work held as long as its failure allowed.
pub const HELD_TOO_LONG: &str = "held_too_long";

impl HoldPolicy {
    /// After `history`'s latest failure (already counted): wait, at least
    /// `at_least` (the partner's own word, or its breaker's next probe), or give up
    /// once it has been held as long as the failure allows.
    pub fn decide(
        &self,
        history: &History,
        key: &str,
        at_least: Duration,
        now: DateTime<Utc>,
    ) -> Decision {
        if self.expired(history, now) {
            return Decision::GiveUp {
                reason: format!(
                    "held for {} through {} tries without success; the last failure: {}",
                    words(history.held_for(now)),
                    history.attempts,
                    history.last_cause.as_deref().unwrap_or("unknown")
                ),
            };
        }
        let attempt = history.attempts.max(1);
        let wait = match Hold::of(history.last_code.as_deref().unwrap_or_default()) {
            Hold::Outage => {
                let held_for = history.held_for(now).to_std().unwrap_or_default();
                self.wait_held(attempt, held_for, key)
            }
            Hold::Token => self.wait(attempt, key),
        };
        Decision::Wait(wait.max(at_least))
    }
}

/// A duration as a person reads it: `3 d 4 h`, `25 min`, `40 s`.
pub fn words(held: chrono::Duration) -> String {
    let seconds = held.num_seconds().max(0);
    match seconds {
        s if s >= 86_400 => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// `full` jittered by `key` and `attempt`: between three quarters and all of it.
fn jittered(full: Duration, key: &str, attempt: u32) -> Duration {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (key, attempt).hash(&mut hasher);
    let share = 0.75 + (hasher.finish() % 1000) as f64 / 4000.0;
    full.mul_f64(share).max(shortest(full))
}

/// The shortest a jittered wait of `full` can be.
fn shortest(full: Duration) -> Duration {
    full * 3 / 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_to_the_cap_jittered_but_never_above_it() {
        let policy = HoldPolicy::default();
        let waits: Vec<Duration> = (1..=12).map(|n| policy.full_wait(n)).collect();
        assert_eq!(waits[0], Duration::from_secs(2));
        assert_eq!(waits[1], Duration::from_secs(4));
        assert_eq!(waits[8], Duration::from_secs(512));
        assert_eq!(waits[9], policy.cap);
        assert_eq!(policy.full_wait(u32::MAX), policy.cap);
        for attempt in 1..40 {
            for key in ["wh-1", "wh-2", "main"] {
                let wait = policy.wait(attempt, key);
                let full = policy.full_wait(attempt);
                assert!(
                    wait >= full * 3 / 4 && wait <= full,
                    "{attempt} {key}: {wait:?}"
                );
            }
        }
        assert_ne!(policy.wait(5, "wh-1"), policy.wait(5, "wh-2"), "jittered");
        assert_eq!(
            policy.wait(5, "wh-1"),
            policy.wait(5, "wh-1"),
            "deterministic"
        );
    }

    #[test]
    fn held_work_waits_at_least_what_the_partner_said_then_gives_up_with_why() {
        let policy = HoldPolicy::default();
        let now: DateTime<Utc> = "2026-12-10T00:00:00Z".parse().expect("time");
        let mut history = History::default();
        history.failed("ghl_rate_limited", "wait 10 s", now);
        assert_eq!(
            policy.decide(&history, "k", Duration::from_secs(10), now),
            Decision::Wait(Duration::from_secs(10))
        );
        let later = now + chrono::Duration::days(4) + chrono::Duration::hours(2);
        history.failed("ghl_unavailable", "GHL answered 503", later);
        let Decision::GiveUp { reason } = policy.decide(&history, "k", Duration::ZERO, later)
        else {
            panic!("held long enough")
        };
        assert!(
            reason.contains("4 d 2 h") && reason.contains("2 tries") && reason.contains("503"),
            "{reason}"
        );
    }

    #[test]
    fn held_work_waits_at_most_a_tenth_of_its_hold_and_a_paused_partner_is_probed_often() {
        let policy = HoldPolicy::default();
        let minutes = |m: u64| Duration::from_secs(60 * m);
        // Nine tries into a 10-minute outage the doubling wait is 512 s: held work
        // waits 30 s at most instead, so it is back within a minute of the return.
        assert_eq!(policy.full_wait(9), Duration::from_secs(512));
        for key in ["wh-1", "wh-2", "main"] {
            let wait = policy.wait_held(9, minutes(10), key);
            let most = Duration::from_secs(30);
            assert!(wait >= most * 3 / 4 && wait <= most, "{wait:?}");
            // Early on, the doubling wait is the shorter one.
            assert!(policy.wait_held(2, minutes(10), key) <= Duration::from_secs(4));
            // Never under the base, however new the hold.
            let first = policy.wait_held(1, Duration::ZERO, key);
            assert!(first >= Duration::from_millis(1500) && first <= policy.base);
            // After days, the cap.
            let late = policy.wait_held(40, minutes(3 * 24 * 60), key);
            assert!(late >= policy.cap * 3 / 4 && late <= policy.cap, "{late:?}");
            // A paused partner is probed at most every `probe_cap`.
            let probe = policy.probe_wait(30, minutes(600), key);
            assert!(probe <= policy.probe_cap && probe >= policy.probe_cap * 3 / 4);
        }
    }

    #[test]
    fn outages_and_token_problems_are_held_as_long_as_each_allows() {
        let policy = HoldPolicy::default();
        let now: DateTime<Utc> = "2026-12-10T00:00:00Z".parse().expect("time");
        let mut history = History::default();
        history.failed("meta_unavailable", "503", now - chrono::Duration::days(3));
        assert!(!policy.expired(&history, now));
        assert!(policy.expired(&history, now + chrono::Duration::days(1)));
        history.failed(code::META_REQUEST_REFUSED, "190", now);
        assert!(
            !policy.expired(&history, now + chrono::Duration::days(3)),
            "a token problem is held longer"
        );
        assert!(policy.expired(&history, now + chrono::Duration::days(5)));
        // A token problem's 7 days at 11.25 minutes at the least per receive, and
        // the ramp before it: within SQS's largest receive limit (1,000). An
        // outage's 4 days, each wait at most a twentieth of the time held, need fewer.
        let needed = policy.receives_needed();
        assert!((890..920).contains(&needed), "{needed}");
        let outage_only = HoldPolicy {
            token_limit: Duration::from_secs(60),
            ..policy
        };
        let needed = outage_only.receives_needed();
        assert!((650..800).contains(&needed), "{needed}");
    }
}
