//! GHL's budget per location, governed: 100 requests per 10 s and 200,000 a day per
//! app and location. Each answer says what is left of the window
//! (`X-RateLimit-Remaining`, `X-RateLimit-Max`, `X-RateLimit-Interval-Milliseconds`)
//! and of the day (`X-RateLimit-Daily-Remaining`, `X-RateLimit-Limit-Daily`).
//!
//! Real-time enrichment may spend a set share of each (`GHL_ENRICHMENT_SHARE`, 80 %
//! by default), counted here; name resolution, write-back, reconciliation and
//! backfill take only what is left beyond the part of that share enrichment has
//! not spent yet, so a location at its budget keeps real-time events flowing while
//! the rest waits. What enrichment spent is known only to the process that spent
//! it: a function of its own (reconciliation's) keeps enrichment's whole share
//! free. A person's command (`verify`, `sample`: a few calls, a person waiting)
//! takes whatever GHL has left.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use reqwest::header::HeaderMap;

/// Never wait longer than this for a window (a function has a deadline).
pub const MAX_WAIT: Duration = Duration::from_secs(10);
/// What GHL allows when its headers do not say.
const WINDOW_MAX: u64 = 100;
const WINDOW: Duration = Duration::from_secs(10);
const DAY_LIMIT: u64 = 200_000;
/// How long what GHL said of the day is taken as true: work waiting on it asks
/// again after this (its next answer says the day anew).
const DAY_RECHECK: Duration = Duration::from_secs(300);
/// Enrichment's share when none is set.
pub const DEFAULT_SHARE: f64 = 0.8;

/// What a GHL call is for: enrichment's share is its own, the rest share what is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Use {
    /// Real-time enrichment's reads: a contact and its notes, tasks, appointments.
    Enrichment,
    /// A location's pipelines, fields and calendars, read for their names.
    Names,
    WriteBack,
    Reconcile,
    Backfill,
    /// A person's command: `verify`, `sample`.
    Command,
}

impl Use {
    /// Its name as a metric dimension.
    pub fn name(self) -> &'static str {
        match self {
            Use::Enrichment => "enrichment",
            Use::Names => "names",
            Use::WriteBack => "write_back",
            Use::Reconcile => "reconcile",
            Use::Backfill => "backfill",
            Use::Command => "command",
        }
    }
}

/// GHL's last word on a location's window.
#[derive(Debug, Clone, Copy)]
struct Window {
    remaining: u64,
    max: u64,
    length: Duration,
    until: Instant,
}

/// GHL's last word on a location's day.
#[derive(Debug, Clone, Copy)]
struct Day {
    remaining: u64,
    limit: u64,
    until: Instant,
}

/// What enrichment spent here: in the current stretch of a window's length, and
/// today (UTC).
#[derive(Debug, Clone, Copy)]
struct Spent {
    since: Instant,
    in_window: u64,
    day: NaiveDate,
    in_day: u64,
}

#[derive(Debug, Clone, Copy)]
struct Location {
    window: Option<Window>,
    day: Option<Day>,
    enrichment: Spent,
}

impl Location {
    fn new(now: Instant, today: NaiveDate) -> Self {
        Location {
            window: None,
            day: None,
            enrichment: Spent {
                since: now,
                in_window: 0,
                day: today,
                in_day: 0,
            },
        }
    }

    fn window_length(&self) -> Duration {
        self.window.map_or(WINDOW, |w| w.length)
    }

    /// Forgets what has passed: a window, a day, a stale word on the day.
    fn age(&mut self, now: Instant, today: NaiveDate) {
        self.window = self.window.filter(|w| w.until > now);
        self.day = self.day.filter(|d| d.until > now);
        let length = self.window_length();
        let spent = &mut self.enrichment;
        if now.saturating_duration_since(spent.since) >= length {
            spent.since = now;
            spent.in_window = 0;
        }
        if spent.day != today {
            spent.day = today;
            spent.in_day = 0;
        }
    }

    /// Enrichment's share of the window and of the day, in requests.
    fn shares(&self, share: f64) -> (u64, u64) {
        let max = self.window.map_or(WINDOW_MAX, |w| w.max);
        let limit = self.day.map_or(DAY_LIMIT, |d| d.limit);
        let of = |n: u64| ((n as f64 * share).ceil() as u64).max(1);
        (of(max), of(limit))
    }

    /// How long `used` waits before its next request; zero: it may go now.
    fn wait(&self, used: Use, share: f64, now: Instant) -> Duration {
        let (window_share, day_share) = self.shares(share);
        let spent = self.enrichment;
        let window_left = |w: &Window| w.until.saturating_duration_since(now);
        // Of the window and the day, what must stay unspent for enrichment.
        let (keep_window, keep_day) = match used {
            Use::Enrichment => {
                // Its share of a window GHL has told of (a stand-in that tells
                // nothing is not held to GHL's numbers).
                if self.window.is_some() && spent.in_window >= window_share {
                    let stretch = self.window_length();
                    return stretch.saturating_sub(now.saturating_duration_since(spent.since));
                }
                if spent.in_day >= day_share {
                    return until_tomorrow();
                }
                (0, 0)
            }
            Use::Command => (0, 0),
            _ => (
                window_share.saturating_sub(spent.in_window),
                day_share.saturating_sub(spent.in_day),
            ),
        };
        if let Some(w) = self.window.filter(|w| w.remaining <= keep_window) {
            return window_left(&w).min(MAX_WAIT);
        }
        if let Some(d) = self.day.filter(|d| d.remaining <= keep_day) {
            return d.until.saturating_duration_since(now);
        }
        Duration::ZERO
    }
}

/// Why a call was not sent, in words ([`super::GhlError::Reserved`]).
pub(super) fn reserved(used: Use, retry_after_ms: u64) -> String {
    match used {
        Use::Enrichment => format!(
            "enrichment has spent its share of the location's GHL budget \
             (GHL_ENRICHMENT_SHARE); retry in {retry_after_ms} ms"
        ),
        other => format!(
            "the location's GHL budget is kept for real-time enrichment; {} retries in \
             {retry_after_ms} ms",
            other.name()
        ),
    }
}

/// Until the next UTC midnight: when enrichment's count of the day starts again.
fn until_tomorrow() -> Duration {
    let now = Utc::now();
    let midnight = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    (midnight - now).to_std().unwrap_or_default()
}

/// What GHL last said of each location's budget, and what enrichment spent of it.
#[derive(Debug)]
pub struct Budget {
    share: f64,
    locations: Mutex<HashMap<String, Location>>,
}

impl Default for Budget {
    fn default() -> Self {
        Budget::new(DEFAULT_SHARE)
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl Budget {
    /// A budget of which enrichment may spend `share` (0 to 1).
    pub fn new(share: f64) -> Self {
        Budget {
            share: share.clamp(0.0, 1.0),
            locations: Mutex::default(),
        }
    }

    /// Enrichment's share.
    pub fn share(&self) -> f64 {
        self.share
    }

    fn with<R>(&self, location: &str, f: impl FnOnce(&mut Location) -> R) -> R {
        let (now, today) = (Instant::now(), Utc::now().date_naive());
        let mut locations = self.locations.lock().unwrap_or_else(|p| p.into_inner());
        let entry =
            (locations.entry(location.to_owned())).or_insert_with(|| Location::new(now, today));
        entry.age(now, today);
        f(entry)
    }

    /// How long `used` waits before its next request for `location`; zero: it may
    /// go now.
    pub fn wait(&self, location: &str, used: Use) -> Duration {
        let share = self.share;
        self.with(location, |l| l.wait(used, share, Instant::now()))
    }

    /// Takes one request for `used` if it may go now (counted against what is
    /// known to be left); else how long it waits.
    pub fn take(&self, location: &str, used: Use) -> Result<(), Duration> {
        let share = self.share;
        self.with(location, |l| {
            let wait = l.wait(used, share, Instant::now());
            if !wait.is_zero() {
                return Err(wait);
            }
            if let Some(w) = &mut l.window {
                w.remaining = w.remaining.saturating_sub(1);
            }
            if let Some(d) = &mut l.day {
                d.remaining = d.remaining.saturating_sub(1);
            }
            if used == Use::Enrichment {
                l.enrichment.in_window += 1;
                l.enrichment.in_day += 1;
            }
            Ok(())
        })
    }

    /// Records an answer's rate-limit headers; what they do not say is unchanged.
    pub fn observe(&self, location: &str, headers: &HeaderMap) {
        let now = Instant::now();
        self.with(location, |l| {
            if let (Some(remaining), Some(interval)) = (
                header(headers, "x-ratelimit-remaining"),
                header(headers, "x-ratelimit-interval-milliseconds"),
            ) {
                // Never longer than MAX_WAIT: a huge interval must not overflow
                // the clock.
                let length = Duration::from_millis(interval).min(MAX_WAIT);
                l.window = Some(Window {
                    remaining,
                    max: header(headers, "x-ratelimit-max").unwrap_or(WINDOW_MAX),
                    length,
                    until: now + length,
                });
            }
            if let Some(remaining) = header(headers, "x-ratelimit-daily-remaining") {
                l.day = Some(Day {
                    remaining,
                    limit: header(headers, "x-ratelimit-limit-daily").unwrap_or(DAY_LIMIT),
                    until: now + DAY_RECHECK,
                });
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(*name, value.parse().expect("value"));
        }
        h
    }

    fn window(remaining: &str, interval: &str) -> HeaderMap {
        headers(&[
            ("x-ratelimit-remaining", remaining),
            ("x-ratelimit-interval-milliseconds", interval),
            ("x-ratelimit-max", "100"),
        ])
    }

    #[test]
    fn a_spent_window_waits_for_its_end_and_other_locations_do_not() {
        let budget = Budget::default();
        assert_eq!(budget.take("loc", Use::Enrichment), Ok(()), "unknown: go");
        budget.observe("loc", &window("1", "10000"));
        assert_eq!(budget.take("loc", Use::Enrichment), Ok(()), "one left");
        let wait = budget.wait("loc", Use::Enrichment);
        assert!(
            wait > Duration::from_secs(9) && wait <= MAX_WAIT,
            "{wait:?}"
        );
        assert_eq!(budget.wait("other", Use::Enrichment), Duration::ZERO);
        budget.observe("loc", &window("0", "50"));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(
            budget.wait("loc", Use::Enrichment),
            Duration::ZERO,
            "passed"
        );
        // Whatever GHL says, the clock does not overflow and the wait stays bounded.
        budget.observe("loc", &window("0", &u64::MAX.to_string()));
        assert!(budget.wait("loc", Use::Enrichment) <= MAX_WAIT);
    }

    #[test]
    fn the_rest_takes_only_what_enrichments_share_leaves() {
        let budget = Budget::new(0.8);
        budget.observe("loc", &window("81", "10000"));
        for used in [Use::Reconcile, Use::Backfill, Use::Names, Use::WriteBack] {
            assert_eq!(budget.wait("loc", used), Duration::ZERO, "{used:?}");
        }
        assert_eq!(budget.take("loc", Use::Reconcile), Ok(()));
        // 80 left: exactly enrichment's share, which it has not touched.
        let wait = budget.take("loc", Use::Backfill).expect_err("kept");
        assert!(wait > Duration::from_secs(9), "{wait:?}");
        assert_eq!(
            budget.take("loc", Use::Enrichment),
            Ok(()),
            "enrichment goes"
        );
        // The 79 left are what enrichment has not spent of its 80.
        assert!(budget.take("loc", Use::WriteBack).is_err());
        budget.observe("loc", &window("90", "10000"));
        assert_eq!(budget.take("loc", Use::Names), Ok(()), "10 beyond its 79");
    }

    #[test]
    fn enrichment_never_spends_more_than_its_share() {
        let budget = Budget::new(0.1);
        for n in 0..20 {
            assert_eq!(budget.take("loc", Use::Enrichment), Ok(()), "untold: {n}");
        }
        let budget = Budget::new(0.1);
        budget.observe("loc", &window("100", "10000"));
        for n in 0..10 {
            assert_eq!(budget.take("loc", Use::Enrichment), Ok(()), "{n}");
        }
        let wait = budget
            .take("loc", Use::Enrichment)
            .expect_err("share spent");
        assert!(wait > Duration::from_secs(9) && wait <= WINDOW, "{wait:?}");
        // What it left is the others' to take.
        assert_eq!(budget.take("loc", Use::Reconcile), Ok(()));
    }

    #[test]
    fn a_day_at_its_budget_keeps_enrichment_going_while_the_rest_waits() {
        let budget = Budget::new(0.8);
        budget.observe(
            "loc",
            &headers(&[
                ("x-ratelimit-remaining", "99"),
                ("x-ratelimit-interval-milliseconds", "10000"),
                ("x-ratelimit-daily-remaining", "150000"),
                ("x-ratelimit-limit-daily", "200000"),
            ]),
        );
        let wait = budget.take("loc", Use::Reconcile).expect_err("day kept");
        assert!(
            wait > Duration::from_secs(60) && wait <= DAY_RECHECK,
            "{wait:?}"
        );
        assert_eq!(budget.take("loc", Use::Enrichment), Ok(()));
        // Nothing left of the day: enrichment waits too, until GHL is asked again.
        budget.observe("loc", &headers(&[("x-ratelimit-daily-remaining", "0")]));
        assert!(budget.take("loc", Use::Enrichment).is_err());
    }
}
