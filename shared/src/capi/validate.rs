//! Checks an event must pass before it is sent. Meta rejects a whole batch for one
//! bad event, so each is checked on its own and refused with a typed reason.

use super::ServerEvent;

/// Events older than this are refused by Meta (for the whole request).
pub const MAX_AGE_SECONDS: i64 = 7 * 24 * 3600;
/// How far ahead of our clock an event may be. Meta's own tolerance is not
/// documented; a minute absorbs clock skew without sending invented times.
pub const MAX_AHEAD_SECONDS: i64 = 60;

/// Why an event is not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    #[error("event_name is empty")]
    NoEventName,
    #[error("no usable customer information (every identifier was empty or invalid)")]
    NoIdentifiers,
    #[error("only {} present, which Meta does not accept on its own (baseline matching)", .present.join(", "))]
    InsufficientIdentifiers { present: Vec<&'static str> },
    #[error("event_time is {age_seconds} s old; Meta accepts at most 7 days")]
    TooOld { age_seconds: i64 },
    #[error("event_time is {ahead_seconds} s in the future")]
    InTheFuture { ahead_seconds: i64 },
    #[error("Purchase needs custom_data.value")]
    PurchaseWithoutValue,
    #[error("Purchase needs custom_data.currency")]
    PurchaseWithoutCurrency,
    #[error("website events need event_source_url and client_user_agent")]
    WebsiteWithoutSource,
    #[error("currency {0:?} is not a three-letter ISO 4217 code")]
    BadCurrency(String),
}

impl Rejection {
    /// A stable name for the reason, for summaries, metrics and dead letters.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::NoEventName => "no_event_name",
            Rejection::NoIdentifiers => "no_identifiers",
            Rejection::InsufficientIdentifiers { .. } => "insufficient_identifiers",
            Rejection::TooOld { .. } => "too_old",
            Rejection::InTheFuture { .. } => "in_the_future",
            Rejection::PurchaseWithoutValue => "purchase_without_value",
            Rejection::PurchaseWithoutCurrency => "purchase_without_currency",
            Rejection::WebsiteWithoutSource => "website_without_source",
            Rejection::BadCurrency(_) => "bad_currency",
        }
    }
}

/// Meta's baseline matching: identifier sets that do not suffice on their own.
const INSUFFICIENT: [&[&str]; 4] = [
    &["ct", "country", "st", "zp", "ge", "client_user_agent"],
    &["db", "client_user_agent"],
    &["fn", "ge"],
    &["ln", "ge"],
];

/// Whether `code` has the shape of an ISO 4217 currency code (three letters).
pub fn is_currency_code(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic())
}

/// Accepts an event time (Unix seconds) inside Meta's window as of `now`.
pub fn check_event_time(event_time: i64, now: i64) -> Result<(), Rejection> {
    let age = now - event_time;
    if age > MAX_AGE_SECONDS {
        return Err(Rejection::TooOld { age_seconds: age });
    }
    if -age > MAX_AHEAD_SECONDS {
        return Err(Rejection::InTheFuture {
            ahead_seconds: -age,
        });
    }
    Ok(())
}

/// Accepts an event Meta would accept, as far as can be known before sending.
/// `now` is Unix seconds.
pub fn validate(event: &ServerEvent, now: i64) -> Result<(), Rejection> {
    if event.event_name.trim().is_empty() {
        return Err(Rejection::NoEventName);
    }
    let present = event.user_data.present_keys();
    if present.clone().next().is_none() {
        return Err(Rejection::NoIdentifiers);
    }
    if INSUFFICIENT
        .iter()
        .any(|set| present.clone().all(|k| set.contains(&k)))
    {
        return Err(Rejection::InsufficientIdentifiers {
            present: present.collect(),
        });
    }
    check_event_time(event.event_time, now)?;
    if let Some(currency) = &event.custom_data.currency
        && !is_currency_code(currency)
    {
        return Err(Rejection::BadCurrency(currency.clone()));
    }
    if event.event_name == "Purchase" {
        if event.custom_data.value.is_none() {
            return Err(Rejection::PurchaseWithoutValue);
        }
        if event.custom_data.currency.is_none() {
            return Err(Rejection::PurchaseWithoutCurrency);
        }
    }
    if event.action_source == super::ActionSource::Website
        && (event.event_source_url.is_none() || event.user_data.client_user_agent.is_none())
    {
        return Err(Rejection::WebsiteWithoutSource);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capi::{ActionSource, CustomData};
    use crate::normalize::Field;

    const NOW: i64 = 1_764_000_000;

    fn lead() -> ServerEvent {
        let mut e = ServerEvent {
            event_name: "Lead".into(),
            event_time: NOW - 60,
            ..ServerEvent::default()
        };
        e.user_data.add(Field::Email, "a@b.co", None);
        e
    }

    #[test]
    fn a_lead_with_an_email_is_valid() {
        assert_eq!(validate(&lead(), NOW), Ok(()));
    }

    #[test]
    fn events_without_enough_identifiers_are_refused() {
        let mut e = lead();
        e.user_data.em.clear();
        assert_eq!(validate(&e, NOW), Err(Rejection::NoIdentifiers));
        e.user_data.add(Field::City, "Paris", None);
        e.user_data.add(Field::Country, "FR", None);
        assert!(matches!(
            validate(&e, NOW),
            Err(Rejection::InsufficientIdentifiers { .. })
        ));
        e.user_data.add(Field::FirstName, "Marie", None);
        assert_eq!(validate(&e, NOW), Ok(()));
    }

    #[test]
    fn times_outside_the_window_are_refused() {
        let mut e = lead();
        e.event_time = NOW - MAX_AGE_SECONDS - 1;
        assert!(matches!(validate(&e, NOW), Err(Rejection::TooOld { .. })));
        e.event_time = NOW + 3600;
        assert!(matches!(
            validate(&e, NOW),
            Err(Rejection::InTheFuture { .. })
        ));
    }

    #[test]
    fn purchases_need_value_and_currency() {
        let mut e = lead();
        e.event_name = "Purchase".into();
        assert_eq!(validate(&e, NOW), Err(Rejection::PurchaseWithoutValue));
        e.custom_data = CustomData {
            value: Some(10.0),
            ..CustomData::default()
        };
        assert_eq!(validate(&e, NOW), Err(Rejection::PurchaseWithoutCurrency));
        e.custom_data.currency = Some("US".into());
        assert!(matches!(validate(&e, NOW), Err(Rejection::BadCurrency(_))));
        e.custom_data.currency = Some("USD".into());
        assert_eq!(validate(&e, NOW), Ok(()));
    }

    #[test]
    fn website_events_need_their_source() {
        let mut e = lead();
        e.action_source = ActionSource::Website;
        assert_eq!(validate(&e, NOW), Err(Rejection::WebsiteWithoutSource));
    }
}
