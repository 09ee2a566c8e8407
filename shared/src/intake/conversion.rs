//! `POST /contacts/{contactId}/conversions`: conversions pushed by the user's own
//! systems, authenticated by an API key, validated and queued; the real-time path.
//!
//! Answers: `202` with the event id once queued; `401` without a valid key; `403`
//! for a key not scoped to the location (or event type); `400` naming what is
//! wrong; `413` over [`MAX_BODY_BYTES`]; `503` when the queue fails (the caller
//! should retry; the event id makes the retry harmless).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::MAX_BODY_BYTES;
use super::keys::{ApiKeys, Forbidden};
use crate::capi::{Rejection, check_event_time, event_id, is_currency_code};
use crate::ghl::parse_timestamp;
use crate::jobs::{ConversionJob, EnrichJob, PostedConversion, group_id};
use crate::ports::queue::{Outgoing, Queue, QueueError};

/// Why a posted conversion was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ConversionError {
    #[error("missing or unknown API key (send Authorization: Bearer <key>)")]
    Unauthorized,
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error("invalid conversion: {0}")]
    Invalid(String),
    #[error("body of {size} bytes is over the {MAX_BODY_BYTES}-byte limit")]
    TooLarge { size: usize },
    #[error("could not queue the conversion; retry")]
    Queue(#[source] QueueError),
}

impl ConversionError {
    /// The HTTP status the caller gets.
    pub fn status(&self) -> u16 {
        match self {
            ConversionError::Unauthorized => 401,
            ConversionError::Forbidden(_) => 403,
            ConversionError::Invalid(_) => 400,
            ConversionError::TooLarge { .. } => 413,
            ConversionError::Queue(_) => 503,
        }
    }

    /// A stable name for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            ConversionError::Unauthorized => "unauthorized",
            ConversionError::Forbidden(_) => "forbidden",
            ConversionError::Invalid(_) => "invalid",
            ConversionError::TooLarge { .. } => "too_large",
            ConversionError::Queue(_) => "enqueue_failed",
        }
    }
}

/// A conversion accepted: the event id Meta will receive, and the key (by its id)
/// that posted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub event_id: String,
    pub key_id: String,
}

/// The answer: status and JSON body.
pub fn reply(outcome: &Result<Posted, ConversionError>) -> (u16, Value) {
    match outcome {
        Ok(posted) => (
            202,
            json!({"status": "accepted", "eventId": posted.event_id}),
        ),
        Err(e) => (e.status(), json!({"error": e.to_string()})),
    }
}

/// The longest `eventId` a caller may choose.
pub const MAX_EVENT_ID: usize = 128;

fn invalid(message: impl Into<String>) -> ConversionError {
    ConversionError::Invalid(message.into())
}

/// Checks a conversion the way Meta would, so the caller hears of a problem now
/// rather than finding it in a dead-letter queue later.
fn validate(
    contact_id: &str,
    c: &PostedConversion,
    now: DateTime<Utc>,
) -> Result<(), ConversionError> {
    if contact_id.trim().is_empty() {
        return Err(invalid("the path names no contact"));
    }
    if c.location_id.trim().is_empty() {
        return Err(invalid("locationId is empty"));
    }
    if c.event_type.trim().is_empty() {
        return Err(invalid("eventType is empty"));
    }
    if let Some(id) = &c.event_id
        && (id.trim().is_empty()
            || id.len() > MAX_EVENT_ID
            || !id.bytes().all(|b| (b' '..=b'~').contains(&b)))
    {
        return Err(invalid(format!(
            "eventId must be 1 to {MAX_EVENT_ID} printable ASCII characters"
        )));
    }
    let at = parse_timestamp(&c.timestamp).ok_or_else(|| {
        invalid(format!(
            "timestamp {:?} is not an ISO-8601 time",
            c.timestamp
        ))
    })?;
    // Meta's window decides; the caller gets it in terms of their own field.
    check_event_time(at.timestamp(), now.timestamp()).map_err(|why| match why {
        Rejection::TooOld { .. } => {
            invalid("timestamp is more than 7 days ago; Meta accepts the last 7 days")
        }
        _ => invalid("timestamp is in the future"),
    })?;
    if let Some(value) = c.value
        && !(value.is_finite() && value >= 0.0)
    {
        return Err(invalid("value must be a non-negative number"));
    }
    if let Some(currency) = &c.currency
        && !is_currency_code(currency)
    {
        return Err(invalid(format!(
            "currency {currency:?} is not a three-letter ISO 4217 code"
        )));
    }
    if c.value.is_some() && c.currency.is_none() {
        return Err(invalid("a value needs its currency"));
    }
    Ok(())
}

/// Authenticates, validates and queues one posted conversion; returns the event id
/// Meta will receive (the caller's `eventId`, or one derived from the conversion so
/// that posting it again deduplicates). A repeat is recognised by location,
/// contact, event type and id together, so one id used for two contacts or two
/// event types is two conversions.
pub async fn accept_conversion(
    keys: &ApiKeys,
    queue: &impl Queue,
    contact_id: &str,
    authorization: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Posted, ConversionError> {
    let key = keys
        .find(authorization)
        .ok_or(ConversionError::Unauthorized)?;
    if body.len() > MAX_BODY_BYTES {
        return Err(ConversionError::TooLarge { size: body.len() });
    }
    let mut conversion: PostedConversion =
        serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
    validate(contact_id, &conversion, now)?;
    key.allows(&conversion.location_id, &conversion.event_type)?;
    let id = conversion.event_id.clone().unwrap_or_else(|| {
        let change = format!("{}@{}", conversion.event_type, conversion.timestamp);
        event_id(&conversion.location_id, contact_id, "conversion", &change)
    });
    conversion.event_id = Some(id.clone());
    let group = group_id(&conversion.location_id, Some(contact_id));
    let job = ConversionJob::new(contact_id, now, &id, conversion);
    let message = Outgoing {
        dedup_id: Some(job.key.clone()),
        body: serde_json::to_string(&EnrichJob::Conversion(job))
            .map_err(|e| ConversionError::Queue(QueueError::new(e)))?,
        group_id: Some(group),
        delay: None,
    };
    queue.send(message).await.map_err(ConversionError::Queue)?;
    Ok(Posted {
        event_id: id,
        key_id: key.id.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::queue::MemoryQueue;

    const KEY: &str = "k-live-0123456789";

    fn keys() -> ApiKeys {
        ApiKeys::parse(&format!(
            r#"["k-old-abc", {{"id": "shop", "key": "{KEY}", "locations": ["loc"]}}]"#
        ))
        .expect("keys")
    }

    fn now() -> DateTime<Utc> {
        "2026-11-20T09:00:05Z".parse().expect("time")
    }

    fn body(extra: Value) -> Vec<u8> {
        let mut b = json!({"locationId": "loc", "eventType": "Purchase", "timestamp": "2026-11-20T09:00:00Z",
            "value": 99.5, "currency": "EUR"});
        if let (Value::Object(b), Value::Object(extra)) = (&mut b, extra) {
            b.extend(extra);
        }
        serde_json::to_vec(&b).expect("json")
    }

    #[tokio::test]
    async fn a_key_posts_only_for_its_locations_and_nothing_else_is_queued() {
        let queue = MemoryQueue::default();
        let auth = format!("Bearer {KEY}");
        let elsewhere = body(json!({"locationId": "other-loc"}));
        let outcome =
            accept_conversion(&keys(), &queue, "c1", Some(&auth), &elsewhere, now()).await;
        let (status, answer) = reply(&outcome);
        assert_eq!(status, 403);
        assert!(
            answer["error"].as_str().expect("error").contains("shop"),
            "{answer}"
        );
        assert!(!answer.to_string().contains(KEY), "the key is never shown");
        assert!(queue.sent().is_empty());
        // The key stored bare (before scopes) posts anywhere.
        let legacy = accept_conversion(
            &keys(),
            &queue,
            "c1",
            Some("Bearer k-old-abc"),
            &elsewhere,
            now(),
        )
        .await;
        assert!(legacy.expect("accepted").key_id.starts_with("key-"));
    }

    #[tokio::test]
    async fn one_event_id_for_two_contacts_or_two_types_is_two_conversions() {
        let queue = MemoryQueue::default();
        let auth = format!("Bearer {KEY}");
        for (contact, event_type) in [("c1", "Purchase"), ("c2", "Purchase"), ("c1", "Lead")] {
            let posted = body(json!({"eventId": "order-1", "eventType": event_type}));
            let outcome =
                accept_conversion(&keys(), &queue, contact, Some(&auth), &posted, now()).await;
            assert_eq!(outcome.expect("accepted").event_id, "order-1");
        }
        let dedup: std::collections::HashSet<Option<String>> =
            queue.sent().into_iter().map(|m| m.dedup_id).collect();
        assert_eq!(dedup.len(), 3, "{dedup:?}");
        for bad in [
            "",
            " ",
            "tab\there",
            &"x".repeat(MAX_EVENT_ID + 1),
            "ünïcode",
        ] {
            let posted = body(json!({"eventId": bad}));
            let outcome =
                accept_conversion(&keys(), &queue, "c1", Some(&auth), &posted, now()).await;
            assert_eq!(reply(&outcome).0, 400, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_valid_conversion_is_queued_and_answered_202_with_its_event_id() {
        let queue = MemoryQueue::default();
        let auth = format!("Bearer {KEY}");
        let outcome =
            accept_conversion(&keys(), &queue, "c1", Some(&auth), &body(json!({})), now()).await;
        let (status, answer) = reply(&outcome);
        assert_eq!(status, 202);
        let id = answer["eventId"].as_str().expect("id").to_owned();
        let sent = queue.sent();
        assert_eq!(sent[0].group_id.as_deref(), Some("loc:c1"));
        assert_eq!(
            sent[0].dedup_id.as_deref(),
            Some(format!("loc:c1:Purchase:{id}").as_str())
        );
        let EnrichJob::Conversion(job) = serde_json::from_str(&sent[0].body).expect("job") else {
            panic!("not a conversion job")
        };
        assert_eq!(
            (job.contact_id.as_str(), job.conversion.event_id.as_deref()),
            ("c1", Some(id.as_str()))
        );
        assert_eq!(job.event_id, id);

        // Posting the same conversion again gives the same id: Meta deduplicates it.
        let again =
            accept_conversion(&keys(), &queue, "c1", Some(&auth), &body(json!({})), now()).await;
        assert_eq!(again.expect("accepted").event_id, id);
        let own = accept_conversion(
            &keys(),
            &queue,
            "c1",
            Some(&auth),
            &body(json!({"eventId": "order-1"})),
            now(),
        )
        .await;
        assert_eq!(own.expect("accepted").event_id, "order-1");
    }

    #[tokio::test]
    async fn bad_requests_are_refused_with_what_is_wrong() {
        let queue = MemoryQueue::default();
        let auth = format!("Bearer {KEY}");
        let cases = [
            (json!({"timestamp": "yesterday"}), "not an ISO-8601 time"),
            (
                json!({"timestamp": "2026-11-01T00:00:00Z"}),
                "more than 7 days",
            ),
            (json!({"currency": "euro"}), "ISO 4217"),
            (json!({"value": -1}), "non-negative"),
            (json!({"eventType": " "}), "eventType is empty"),
            (json!({"colour": "red"}), "unknown field `colour`"),
        ];
        for (extra, problem) in cases {
            let outcome = accept_conversion(
                &keys(),
                &queue,
                "c1",
                Some(&auth),
                &body(extra.clone()),
                now(),
            )
            .await;
            let (status, answer) = reply(&outcome);
            assert_eq!(status, 400, "{extra}");
            assert!(
                answer["error"].as_str().expect("error").contains(problem),
                "{answer} for {extra}"
            );
        }
        let unauthorized = accept_conversion(
            &keys(),
            &queue,
            "c1",
            Some("Bearer nope"),
            &body(json!({})),
            now(),
        )
        .await;
        assert_eq!(reply(&unauthorized).0, 401);
        assert!(queue.sent().is_empty());
    }

    #[tokio::test]
    async fn a_queue_failure_is_503_so_the_caller_retries() {
        let queue = MemoryQueue::default();
        queue.fail_next(1);
        let auth = format!("Bearer {KEY}");
        let outcome =
            accept_conversion(&keys(), &queue, "c1", Some(&auth), &body(json!({})), now()).await;
        assert_eq!(reply(&outcome).0, 503);
    }
}
