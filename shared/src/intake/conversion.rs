//! `POST /contacts/{contactId}/conversions`: conversions pushed by the user's own
//! systems, authenticated by an API key, validated and queued; the real-time path.
//! Answered as [`CHECKS`] says, as every keyed route ([`super::keyed`]).

use chrono::{DateTime, Utc};

use super::keyed::{Accepted, Checks, KeyedError, enqueue};
use super::keys::{ApiKeys, Credentials};
use crate::capi::event_id;
use crate::ghl::parse_timestamp;
use crate::jobs::{ConversionJob, EnrichJob, PostedConversion};
use crate::ports::queue::Queue;

/// Posted conversions: `202` once queued, `503` to send again (the caller is the
/// user's own system, which retries any 5xx).
pub const CHECKS: Checks = Checks {
    what: "conversion",
    accepted: 202,
    retry: 503,
};

/// Checks a conversion the way Meta would, so the caller hears of a problem now
/// rather than finding it in a dead-letter queue later.
fn validate(contact_id: &str, c: &PostedConversion, now: DateTime<Utc>) -> Result<(), KeyedError> {
    if contact_id.trim().is_empty() {
        return Err(CHECKS.invalid("the path names no contact"));
    }
    if c.location_id.trim().is_empty() {
        return Err(CHECKS.invalid("locationId is empty"));
    }
    if c.event_type.trim().is_empty() {
        return Err(CHECKS.invalid("eventType is empty"));
    }
    CHECKS.event_id(c.event_id.as_deref())?;
    let at = parse_timestamp(&c.timestamp).ok_or_else(|| {
        CHECKS.invalid(format!(
            "timestamp {:?} is not an ISO-8601 time",
            c.timestamp
        ))
    })?;
    CHECKS.time(at, "timestamp", now)?;
    CHECKS.money(c.value, c.currency.as_deref())?;
    if c.value.is_some() && c.currency.is_none() {
        return Err(CHECKS.invalid("a value needs its currency"));
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
    credentials: Credentials<'_>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Accepted, KeyedError> {
    let key = CHECKS.authenticate(keys, credentials, body)?;
    let mut conversion: PostedConversion =
        serde_json::from_slice(body).map_err(|e| CHECKS.invalid(e.to_string()))?;
    validate(contact_id, &conversion, now)?;
    key.allows(&conversion.location_id, Some(&conversion.event_type))?;
    let id = conversion.event_id.clone().unwrap_or_else(|| {
        let change = format!("{}@{}", conversion.event_type, conversion.timestamp);
        event_id(&conversion.location_id, contact_id, "conversion", &change)
    });
    conversion.event_id = Some(id.clone());
    let job = EnrichJob::Conversion(ConversionJob::new(contact_id, now, &id, conversion));
    enqueue(queue, &job).await?;
    Ok(Accepted {
        event_id: id,
        key_id: key.id.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::keyed::MAX_EVENT_ID;
    use crate::ports::queue::MemoryQueue;
    use serde_json::{Value, json};

    /// Posts `body` for `contact` with the `authorization` header, as of `now()`.
    async fn post(
        queue: &MemoryQueue,
        contact: &str,
        authorization: &str,
        body: &[u8],
    ) -> Result<Accepted, KeyedError> {
        let credentials = Credentials {
            authorization: Some(authorization),
            api_key: None,
            ..Default::default()
        };
        accept_conversion(&keys(), queue, contact, credentials, body, now()).await
    }

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
        crate::intake::keyed::body_with(
            json!({"locationId": "loc", "eventType": "Purchase", "timestamp": "2026-11-20T09:00:00Z",
            "value": 99.5, "currency": "EUR"}),
            extra,
        )
    }

    #[tokio::test]
    async fn a_key_posts_only_for_its_locations_and_nothing_else_is_queued() {
        let queue = MemoryQueue::default();
        let auth = format!("Bearer {KEY}");
        let elsewhere = body(json!({"locationId": "other-loc"}));
        let outcome = post(&queue, "c1", &auth, &elsewhere).await;
        let (status, answer) = CHECKS.reply(&outcome);
        assert_eq!(status, 403);
        assert!(
            answer["error"].as_str().expect("error").contains("shop"),
            "{answer}"
        );
        assert!(!answer.to_string().contains(KEY), "the key is never shown");
        assert!(queue.sent().is_empty());
        // The key stored bare (before scopes) posts anywhere.
        let legacy = post(&queue, "c1", "Bearer k-old-abc", &elsewhere).await;
        assert!(legacy.expect("accepted").key_id.starts_with("key-"));
    }

    #[tokio::test]
    async fn one_event_id_for_two_contacts_or_two_types_is_two_conversions() {
        let queue = MemoryQueue::default();
        let auth = format!("Bearer {KEY}");
        for (contact, event_type) in [("c1", "Purchase"), ("c2", "Purchase"), ("c1", "Lead")] {
            let posted = body(json!({"eventId": "order-1", "eventType": event_type}));
            let outcome = post(&queue, contact, &auth, &posted).await;
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
            let outcome = post(&queue, "c1", &auth, &posted).await;
            assert_eq!(CHECKS.reply(&outcome).0, 400, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_valid_conversion_is_queued_and_answered_202_with_its_event_id() {
        let queue = MemoryQueue::default();
        let auth = format!("Bearer {KEY}");
        let outcome = post(&queue, "c1", &auth, &body(json!({}))).await;
        let (status, answer) = CHECKS.reply(&outcome);
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
        let again = post(&queue, "c1", &auth, &body(json!({}))).await;
        assert_eq!(again.expect("accepted").event_id, id);
        let own = post(&queue, "c1", &auth, &body(json!({"eventId": "order-1"}))).await;
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
            let outcome = post(&queue, "c1", &auth, &body(extra.clone())).await;
            let (status, answer) = CHECKS.reply(&outcome);
            assert_eq!(status, 400, "{extra}");
            assert!(
                answer["error"].as_str().expect("error").contains(problem),
                "{answer} for {extra}"
            );
        }
        let unauthorized = post(&queue, "c1", "Bearer nope", &body(json!({}))).await;
        assert_eq!(CHECKS.reply(&unauthorized).0, 401);
        assert!(queue.sent().is_empty());
    }

    #[tokio::test]
    async fn a_queue_failure_is_503_so_the_caller_retries() {
        let queue = MemoryQueue::default();
        queue.fail_next(1);
        let auth = format!("Bearer {KEY}");
        let outcome = post(&queue, "c1", &auth, &body(json!({}))).await;
        assert_eq!(CHECKS.reply(&outcome).0, 503);
    }
}
