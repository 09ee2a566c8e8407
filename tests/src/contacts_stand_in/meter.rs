//! GHL's rate limits as the stand-in counts them: a location's window and day,
//! and the headers GHL tells them in.

use std::time::{Duration, Instant};

use wiremock::ResponseTemplate;

/// A location's rate limits as GHL counts them.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_window: u64,
    pub window: Duration,
    pub per_day: u64,
    /// What is left of the day now.
    pub day_left: u64,
}

#[derive(Debug)]
pub(super) struct Meter {
    pub(super) limits: Limits,
    pub(super) started: Instant,
    pub(super) in_window: u64,
    /// Requests answered `429`.
    pub(super) refused: u64,
}

impl Meter {
    /// Counts one request: GHL's headers for it, and whether it is refused (`429`).
    pub(super) fn count(&mut self) -> (Vec<(&'static str, String)>, bool) {
        let limits = self.limits;
        if self.started.elapsed() >= limits.window {
            self.started = Instant::now();
            self.in_window = 0;
        }
        let spent = self.in_window >= limits.per_window || limits.day_left == 0;
        if spent {
            self.refused += 1;
        } else {
            self.in_window += 1;
            self.limits.day_left -= 1;
        }
        let headers = vec![
            ("X-RateLimit-Max", limits.per_window.to_string()),
            (
                "X-RateLimit-Remaining",
                (limits.per_window - self.in_window).to_string(),
            ),
            (
                "X-RateLimit-Interval-Milliseconds",
                limits.window.as_millis().to_string(),
            ),
            ("X-RateLimit-Limit-Daily", limits.per_day.to_string()),
            (
                "X-RateLimit-Daily-Remaining",
                self.limits.day_left.to_string(),
            ),
        ];
        (headers, spent)
    }
}

pub(super) fn with_headers(
    answer: ResponseTemplate,
    headers: Vec<(&str, String)>,
) -> ResponseTemplate {
    (headers.into_iter()).fold(answer, |answer, (name, value)| {
        answer.insert_header(name, value.as_str())
    })
}
