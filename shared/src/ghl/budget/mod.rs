//! GHL's budget per location, governed: 100 requests per 10 s and 200,000 a day per
//! app and location. Each answer says what is left of the window
//! (`X-RateLimit-Remaining`, `X-RateLimit-Max`, `X-RateLimit-Interval-Milliseconds`)
//! and of the day (`X-RateLimit-Daily-Remaining`, `X-RateLimit-Limit-Daily`).
//!
//! Real-time enrichment may spend a set share of each
//! (`GHL_ENRICHMENT_SHARE_PERCENT`, 80 % by default), counted here; name
//! resolution, write-back, reconciliation and backfill take only what is left
//! beyond the part of that share enrichment has not spent yet, so a location at
//! its budget keeps real-time events flowing while the rest waits. What enrichment
//! spent is known only to the process that spent it: a function of its own
//! (reconciliation's) keeps enrichment's whole share free. A person's command
//! (`verify`, `sample`: a few calls, a person waiting) takes whatever GHL has
//! left. Calls made side by side are out until answered ([`Taken`]): GHL's
//! answers to them come in any order, so what is left of the window is the least
//! they said, less the calls still out. (The day's count is taken as said: a few
//! calls out of order are nothing beside its 200,000.)

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

/// Our calls to a location that GHL has not answered yet, and the least it has
/// said was left of the window while they were out.
#[derive(Debug, Clone, Copy, Default)]
struct Flight {
    out: u64,
    low: Option<(u64, Instant)>,
}

#[derive(Debug, Clone, Copy)]
struct Location {
    window: Option<Window>,
    day: Option<Day>,
    enrichment: Spent,
    flight: Flight,
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
            flight: Flight::default(),
        }
    }

    /// One of our calls answered, with GHL's word on the window if it gave one.
    /// Calls made side by side are answered in any order, and the answer read last
    /// may be of the call GHL counted first: while calls are out, the least GHL
    /// said is kept (for a window's length at most: GHL's window moves on), and
    /// each call still out is counted as spent.
    fn answered(&mut self, told: Option<Window>, now: Instant) {
        self.flight.out = self.flight.out.saturating_sub(1);
        let Some(mut window) = told else {
            return self.landed(0);
        };
        let low = match self.flight.low {
            Some((low, since)) if now.saturating_duration_since(since) < window.length => {
                (low.min(window.remaining), since)
            }
            _ => (window.remaining, now),
        };
        self.flight.low = (self.flight.out > 0).then_some(low);
        window.remaining = low.0.saturating_sub(self.flight.out);
        self.window = Some(window);
    }

    /// `calls` of ours are no longer out, unanswered; none out, what their answers
    /// said is done with.
    fn landed(&mut self, calls: u64) {
        self.flight.out = self.flight.out.saturating_sub(calls);
        if self.flight.out == 0 {
            self.flight.low = None;
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
             (GHL_ENRICHMENT_SHARE_PERCENT); retry in {retry_after_ms} ms"
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

/// A rate-limit header's number, if the answer has one that reads as a number.
pub(super) fn header(headers: &HeaderMap, name: &str) -> Option<u64> {
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
        // Looked up before it is keyed: a known location's id is not copied.
        if !locations.contains_key(location) {
            locations.insert(location.to_owned(), Location::new(now, today));
        }
        let entry = locations.get_mut(location).expect("inserted above");
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
    /// known to be left), out until its answer is [`Taken::observe`]d or it is
    /// dropped unanswered; else how long it waits.
    pub fn take<'a>(&'a self, location: &'a str, used: Use) -> Result<Taken<'a>, Duration> {
        let share = self.share;
        self.with(location, |l| {
            let wait = l.wait(used, share, Instant::now());
            if !wait.is_zero() {
                return Err(wait);
            }
            l.flight.out += 1;
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
            Ok(Taken {
                budget: self,
                location,
                answered: false,
            })
        })
    }

    /// Records the rate-limit headers of an answer to a call taken here; what they
    /// do not say is unchanged.
    fn observe(&self, location: &str, headers: &HeaderMap) {
        let now = Instant::now();
        self.with(location, |l| {
            let window = (header(headers, "x-ratelimit-remaining"))
                .zip(header(headers, "x-ratelimit-interval-milliseconds"))
                .map(|(remaining, interval)| {
                    // Never longer than MAX_WAIT: a huge interval must not overflow
                    // the clock.
                    let length = Duration::from_millis(interval).min(MAX_WAIT);
                    Window {
                        remaining,
                        max: header(headers, "x-ratelimit-max").unwrap_or(WINDOW_MAX),
                        length,
                        until: now + length,
                    }
                });
            l.answered(window, now);
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

/// One request taken from a location's budget, out until GHL answers it.
#[derive(Debug)]
#[must_use = "a call taken is out until its answer is observed or it is dropped"]
pub struct Taken<'a> {
    budget: &'a Budget,
    location: &'a str,
    answered: bool,
}

impl Taken<'_> {
    /// GHL answered it: its rate-limit headers say what is left.
    pub fn observe(mut self, headers: &HeaderMap) {
        self.budget.observe(self.location, headers);
        self.answered = true;
    }
}

impl Drop for Taken<'_> {
    /// Unanswered (the call failed or was given up), it is no longer out either.
    fn drop(&mut self) {
        if !self.answered {
            self.budget.with(self.location, |l| l.landed(1));
        }
    }
}

#[cfg(test)]
mod tests;
