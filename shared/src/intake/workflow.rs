//! `POST /workflows/ghl`: calls of GHL's workflow actions (the Webhook action's
//! standard payload, or a Custom Webhook action's body), authenticated by an API
//! key scoped to the call's location, validated and queued. Answered as
//! [`CHECKS`] says, as every keyed route ([`super::keyed`]).
//!
//! GHL calls again when a call fails, and a workflow may run twice for one
//! contact. So the call's event id is its own `eventId` when it gives one, else
//! derived from its location, workflow and contact and the trigger's own time
//! (`occurredAt`), never the arrival time; a call that gives no time is known by
//! its whole body, so a retry (the same body) deduplicates.

use chrono::{DateTime, Utc};

use super::keyed::{Accepted, Checks, KeyedError, enqueue};
use super::keys::{ApiKeys, Credentials};
use crate::capi::event_id;
use crate::ghl::parse_timestamp;
use crate::ghl::workflow::{WorkflowCall, object_of, take_key};
use crate::jobs::{EnrichJob, WorkflowJob};
use crate::mapping::{as_number, declared};
use crate::normalize::sha256_hex;
use crate::ports::queue::Queue;

/// Workflow calls: `200` once queued, `429` to send again. GHL is the caller,
/// and of its retry rules (`../shared/reference/ghl-api.md` §3.6: one retries
/// only `429`, a newer one any non-2xx) `429` is retried under both.
pub const CHECKS: Checks = Checks {
    what: "workflow call",
    accepted: 200,
    retry: 429,
};

/// Checks what Meta would refuse, in the call's own terms, and that a trigger
/// the call declares is one it can tell.
fn validate(call: &WorkflowCall, now: DateTime<Utc>) -> Result<(), KeyedError> {
    CHECKS.event_id(call.event_id.as_deref())?;
    declared(call, "check", now).map_err(|e| CHECKS.invalid(e.to_string()))?;
    if let Some(at) = &call.occurred_at {
        let parsed = parse_timestamp(at)
            .ok_or_else(|| CHECKS.invalid(format!("occurredAt {at:?} is not an ISO-8601 time")))?;
        CHECKS.time(parsed, "occurredAt", now)?;
    }
    let value = match &call.value {
        None => None,
        Some(v) => {
            Some(as_number(v).ok_or_else(|| CHECKS.invalid(format!("value {v} is not a number")))?)
        }
    };
    CHECKS.money(value, call.currency.as_deref())
}

/// The event id Meta will receive for `call`: its own, or one derived from it.
pub fn event_id_of(call: &WorkflowCall) -> String {
    if let Some(id) = &call.event_id {
        return id.clone();
    }
    let change = match call.occurred_at.as_deref().and_then(parse_timestamp) {
        Some(at) => format!("at:{}", at.timestamp_millis()),
        // The body as a canonical text (keys sorted), so formatting cannot split
        // one call in two.
        None => {
            let canonical = serde_json::Value::Object(call.body.clone()).to_string();
            format!("body:{}", sha256_hex(&canonical).as_str())
        }
    };
    let workflow = format!("workflow:{}", call.workflow.key());
    event_id(&call.location_id, &call.contact_id, &workflow, &change)
}

/// Authenticates, validates and queues one workflow call; returns the event id
/// Meta will receive. A key the body carries (GHL's plain Webhook action may
/// offer no header) is taken out of it before the key is checked, so the job
/// queued, and all that follows from it, never holds it.
pub async fn accept_workflow(
    keys: &ApiKeys,
    queue: &impl Queue,
    credentials: Credentials<'_>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Accepted, KeyedError> {
    // Over the limit, the body is not read: it is refused as too large below.
    let mut read = (body.len() <= crate::intake::MAX_BODY_BYTES).then(|| object_of(body));
    let carried = match &mut read {
        Some(Ok(object)) => take_key(object),
        _ => None,
    };
    let credentials = Credentials {
        in_body: carried.as_deref(),
        ..credentials
    };
    let key = CHECKS.authenticate(keys, credentials, body)?;
    let call = read
        .ok_or(KeyedError::TooLarge { size: body.len() })?
        .and_then(WorkflowCall::read)
        .map_err(|e| CHECKS.invalid(e.to_string()))?;
    // The key's scope first: a caller learns nothing of a location it may not use.
    key.allows(&call.location_id, call.event.as_deref())?;
    validate(&call, now)?;
    let id = event_id_of(&call);
    // The body as read, without the key it may have carried.
    let text = serde_json::Value::Object(call.body.clone()).to_string();
    let job = EnrichJob::Workflow(WorkflowJob::new(&call, &id, now, &text));
    enqueue(queue, &job).await?;
    Ok(Accepted {
        event_id: id,
        key_id: key.id.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::queue::MemoryQueue;
    use serde_json::{Value, json};

    const KEY: &str = "ck_live_0123456789";

    fn keys() -> ApiKeys {
        ApiKeys::parse(&format!(
            r#"[{{"id": "shop", "key": "{KEY}", "locations": ["loc"]}},
                {{"id": "crm", "key": "ck_crm_0123456789", "locations": ["loc"], "event_types": ["Schedule"]}}]"#
        ))
        .expect("keys")
    }

    fn header(key: &str) -> Credentials<'_> {
        Credentials {
            authorization: None,
            api_key: Some(key),
            ..Default::default()
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-11-20T09:00:05Z".parse().expect("time")
    }

    fn body(extra: Value) -> Vec<u8> {
        crate::intake::keyed::body_with(
            json!({"locationId": "loc", "contactId": "c1", "workflow": "Booked call"}),
            extra,
        )
    }

    async fn accept(queue: &MemoryQueue, key: &str, body: &[u8]) -> (u16, Value) {
        let outcome = accept_workflow(&keys(), queue, header(key), body, now()).await;
        CHECKS.reply(&outcome)
    }

    #[tokio::test]
    async fn a_call_is_queued_once_and_a_retry_gets_the_same_event_id() {
        let queue = MemoryQueue::default();
        let (status, answer) = accept(&queue, KEY, &body(json!({}))).await;
        assert_eq!(status, 200, "{answer}");
        let id = answer["eventId"].as_str().expect("id").to_owned();
        let (_, again) = accept(&queue, KEY, &body(json!({}))).await;
        assert_eq!(again["eventId"], id.as_str());
        let sent = queue.sent();
        assert_eq!(sent[0].dedup_id, sent[1].dedup_id, "a retry deduplicates");
        assert_eq!(sent[0].group_id.as_deref(), Some("loc:c1"));
        let EnrichJob::Workflow(job) = serde_json::from_str(&sent[0].body).expect("job") else {
            panic!("not a workflow job")
        };
        assert_eq!(
            (job.event_id.as_str(), job.contact_id.as_str()),
            (id.as_str(), "c1")
        );

        // Another run, told apart by the trigger's time (not the arrival time).
        let later = body(json!({"occurredAt": "2026-11-20T09:00:00Z"}));
        let (_, run) = accept(&queue, KEY, &later).await;
        assert_ne!(run["eventId"], id.as_str());
        let same_time = body(json!({"occurredAt": "2026-11-20T09:00:00.000Z", "note": "x"}));
        let (_, same) = accept(&queue, KEY, &same_time).await;
        assert_eq!(
            same["eventId"], run["eventId"],
            "one trigger time, one event"
        );
        let (_, own) = accept(&queue, KEY, &body(json!({"eventId": "booking-7"}))).await;
        assert_eq!(own["eventId"], "booking-7");
    }

    #[tokio::test]
    async fn a_key_for_another_location_is_403_and_nothing_is_queued() {
        let queue = MemoryQueue::default();
        let elsewhere = body(json!({"locationId": "other"}));
        let (status, answer) = accept(&queue, KEY, &elsewhere).await;
        assert_eq!(status, 403, "{answer}");
        assert!(!answer.to_string().contains(KEY));
        let (status, _) = accept(&queue, "ck_crm_0123456789", &body(json!({}))).await;
        assert_eq!(
            status, 403,
            "a key for some event types needs the call's event"
        );
        let (status, _) = accept(&queue, "nope", &body(json!({}))).await;
        assert_eq!(status, 401);
        assert!(queue.sent().is_empty());
        let (status, _) = accept(
            &queue,
            "ck_crm_0123456789",
            &body(json!({"event": "Schedule"})),
        )
        .await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn bad_calls_are_refused_with_what_is_wrong() {
        let queue = MemoryQueue::default();
        let cases = [
            (json!({"contactId": ""}), "contactId is missing"),
            (json!({"workflow": null}), "workflow is missing"),
            (json!({"occurredAt": "yesterday"}), "not an ISO-8601 time"),
            (
                json!({"occurredAt": "2026-11-01T00:00:00Z"}),
                "more than 7 days",
            ),
            (json!({"value": "lots"}), "not a number"),
            (json!({"value": -1}), "non-negative"),
            (json!({"currency": "euro"}), "ISO 4217"),
            (json!({"eventId": "tab\there"}), "printable ASCII"),
        ];
        for (extra, problem) in cases {
            let (status, answer) = accept(&queue, KEY, &body(extra.clone())).await;
            assert_eq!(status, 400, "{extra}");
            let error = answer["error"].as_str().expect("error");
            assert!(error.contains(problem), "{answer} for {extra}");
            assert!(error.starts_with("invalid workflow call"), "{error}");
        }
        let huge = body(json!({"note": "x".repeat(crate::intake::MAX_BODY_BYTES)}));
        assert_eq!(accept(&queue, KEY, &huge).await.0, 413);
        let queue_down = MemoryQueue::default();
        queue_down.fail_next(1);
        assert_eq!(accept(&queue_down, KEY, &body(json!({}))).await.0, 429);
        assert!(queue.sent().is_empty());
    }
}
