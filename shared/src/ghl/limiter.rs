//! GHL's rate limit, per location: 100 requests per 10 s (and 200,000 a day) per app
//! and location. Each answer says what is left (`X-RateLimit-Remaining`) and the
//! window (`X-RateLimit-Interval-Milliseconds`); when nothing is left, callers wait
//! for the window to pass instead of spending a request on a `429`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

/// Never wait longer than this for a window (a function has a deadline).
const MAX_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
struct Window {
    remaining: u64,
    until: Instant,
}

/// What GHL last said about each location's budget.
#[derive(Debug, Default)]
pub struct Limiter(Mutex<HashMap<String, Window>>);

fn header(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl Limiter {
    /// How long to wait before the next request for `location`.
    pub fn wait(&self, location: &str) -> Duration {
        let windows = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match windows.get(location) {
            Some(w) if w.remaining == 0 => w
                .until
                .saturating_duration_since(Instant::now())
                .min(MAX_WAIT),
            _ => Duration::ZERO,
        }
    }

    /// Records an answer's rate-limit headers; without them nothing changes.
    pub fn observe(&self, location: &str, headers: &HeaderMap) {
        let (Some(remaining), Some(interval)) = (
            header(headers, "x-ratelimit-remaining"),
            header(headers, "x-ratelimit-interval-milliseconds"),
        ) else {
            return;
        };
        let mut windows = self.0.lock().unwrap_or_else(|p| p.into_inner());
        windows.insert(
            location.to_owned(),
            Window {
                remaining,
                // Never waited longer than MAX_WAIT: a huge interval must not
                // overflow the clock.
                until: Instant::now() + Duration::from_millis(interval).min(MAX_WAIT),
            },
        );
    }

    /// How long work that must leave `keep` requests of the window to others
    /// waits: until the window passes, when fewer are known to be left.
    pub fn reserved(&self, location: &str, keep: u64) -> Option<Duration> {
        let windows = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let w = windows.get(location)?;
        let left = w.until.saturating_duration_since(Instant::now());
        (w.remaining < keep && !left.is_zero()).then_some(left)
    }

    /// Counts a request about to be sent against the known budget.
    pub fn spend(&self, location: &str) {
        let mut windows = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = windows.get_mut(location) {
            if w.until <= Instant::now() {
                windows.remove(location);
            } else {
                w.remaining = w.remaining.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(remaining: &str, interval: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", remaining.parse().expect("value"));
        h.insert(
            "x-ratelimit-interval-milliseconds",
            interval.parse().expect("value"),
        );
        h
    }

    #[test]
    fn a_spent_budget_waits_for_its_window_and_others_do_not() {
        let limiter = Limiter::default();
        assert_eq!(limiter.wait("loc"), Duration::ZERO, "unknown: go");
        limiter.observe("loc", &headers("1", "10000"));
        assert_eq!(limiter.wait("loc"), Duration::ZERO, "one left");
        limiter.spend("loc");
        let wait = limiter.wait("loc");
        assert!(
            wait > Duration::from_secs(9) && wait <= MAX_WAIT,
            "{wait:?}"
        );
        assert_eq!(limiter.wait("other"), Duration::ZERO, "per location");
        limiter.observe("loc", &headers("0", "50"));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(limiter.wait("loc"), Duration::ZERO, "the window passed");
        // Whatever GHL says, the clock does not overflow and the wait stays bounded.
        limiter.observe("loc", &headers("0", &u64::MAX.to_string()));
        assert!(limiter.wait("loc") <= MAX_WAIT);
    }
}
