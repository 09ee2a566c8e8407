//! Replay protection by the delivery `timestamp`.
//!
//! GHL retries a webhook for about 70 minutes (only after a `429` in one version of
//! its guide, after any failure in a later one), and whether a retry keeps its
//! first `timestamp` is not documented, so the default window is two hours: long
//! enough for every retry either way. Duplicates inside the window are caught by
//! the `webhookId` idempotency key, not by the clock. GHL stamps every delivery, so
//! a signed body without a `timestamp` is refused: it could be a replay of any age.

use chrono::{DateTime, Duration, Utc};

use super::Envelope;

/// Variable that sets the accepted age of a delivery, in seconds.
pub const MAX_AGE_VAR: &str = "GHL_WEBHOOK_MAX_AGE_SECONDS";

/// How old (or how far ahead of our clock) a delivery may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayWindow {
    pub max_age: Duration,
    pub max_ahead: Duration,
}

/// Why a delivery is refused as a replay (answered `401`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("the delivery has no timestamp (GHL stamps every delivery)")]
    Missing,
    #[error("timestamp {0:?} is not an ISO-8601 time")]
    Unreadable(String),
    #[error("delivery is {age_seconds} s old; at most {max_seconds} s is accepted")]
    TooOld { age_seconds: i64, max_seconds: i64 },
    #[error("delivery is {ahead_seconds} s in the future")]
    FromTheFuture { ahead_seconds: i64 },
    #[error("{MAX_AGE_VAR} must be a positive number of seconds, not {0:?}")]
    BadSetting(String),
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow {
            max_age: Duration::hours(2),
            max_ahead: Duration::minutes(5),
        }
    }
}

impl ReplayWindow {
    /// The window from configuration ([`MAX_AGE_VAR`]), else the default.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ReplayError> {
        match lookup(MAX_AGE_VAR) {
            None => Ok(Self::default()),
            Some(raw) => match raw.trim().parse::<i64>() {
                Ok(secs) if secs > 0 => Ok(ReplayWindow {
                    max_age: Duration::seconds(secs),
                    ..Self::default()
                }),
                _ => Err(ReplayError::BadSetting(raw)),
            },
        }
    }

    /// Accepts a delivery sent inside the window; one without a timestamp is
    /// refused (GHL's documented examples have none, its deliveries always do).
    pub fn check(&self, envelope: &Envelope, now: DateTime<Utc>) -> Result<(), ReplayError> {
        let text = envelope.timestamp.as_deref().ok_or(ReplayError::Missing)?;
        let sent = envelope
            .sent_at()
            .ok_or_else(|| ReplayError::Unreadable(text.to_owned()))?;
        let age = now - sent;
        if age > self.max_age {
            return Err(ReplayError::TooOld {
                age_seconds: age.num_seconds(),
                max_seconds: self.max_age.num_seconds(),
            });
        }
        if -age > self.max_ahead {
            return Err(ReplayError::FromTheFuture {
                ahead_seconds: (-age).num_seconds(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(at: &str) -> Envelope {
        Envelope {
            timestamp: Some(at.to_owned()),
            ..Envelope::default()
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-11-26T12:00:00Z".parse().expect("time")
    }

    #[test]
    fn a_retry_an_hour_later_is_still_accepted() {
        let w = ReplayWindow::default();
        assert_eq!(w.check(&sent("2026-11-26T10:50:00.000Z"), now()), Ok(()));
    }

    #[test]
    fn old_future_and_unreadable_timestamps_are_refused() {
        let w = ReplayWindow::from_lookup(|_| Some("300".into())).expect("valid");
        assert!(matches!(
            w.check(&sent("2026-11-26T11:50:00Z"), now()),
            Err(ReplayError::TooOld { .. })
        ));
        assert!(matches!(
            w.check(&sent("2026-11-26T12:10:00Z"), now()),
            Err(ReplayError::FromTheFuture { .. })
        ));
        assert!(matches!(
            w.check(&sent("yesterday"), now()),
            Err(ReplayError::Unreadable(_))
        ));
        assert_eq!(
            w.check(&Envelope::default(), now()),
            Err(ReplayError::Missing),
            "no timestamp, no way to tell a replay"
        );
    }

    #[test]
    fn a_bad_setting_is_refused() {
        assert!(ReplayWindow::from_lookup(|_| Some("-1".into())).is_err());
    }
}
