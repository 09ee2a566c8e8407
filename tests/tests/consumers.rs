//! The enrichment and dispatch functions' batch logic: what is queued, delivered,
//! dead-lettered, and which records are handed back for retry.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use ghl_capi::capi::EventRequest;
use ghl_capi::consumer::{Record, Retry, dispatch_records, enrich_records};
use ghl_capi::dispatch::EventsApi;
use ghl_capi::enrich::{DispatchJob, GhlError, GhlReader, MemoryState};
use ghl_capi::ghl::Contact;
use ghl_capi::intake::EnrichJob;
use ghl_capi::mapping::{Mapping, Need};
use ghl_capi::queue::MemoryQueue;
use serde_json::{Value, json};

struct NoGhl;

impl GhlReader for NoGhl {
    async fn contact(&self, _: &str, id: &str) -> Result<Contact, GhlError> {
        panic!("rules with needs = [] fetch nothing, yet contact {id} was read")
    }
    async fn related(&self, _: &str, _: &str, _: Need) -> Result<Value, GhlError> {
        panic!("nothing related was asked for")
    }
}

fn now() -> DateTime<Utc> {
    "2026-11-21T00:00:00Z".parse().expect("time")
}

const MAPPING: &str = r#"
[[pixels]]
name = "main"
dataset_id = "123"
access_token = { env = "T" }

[[rules]]
name = "lead"
trigger = "contact.created"
event_name = "Lead"
needs = []

[[rules]]
name = "tagged"
trigger = "contact.tag_added"
event_name = "CompleteRegistration"
needs = []
[rules.custom_data]
content_name = { field = "trigger.tag" }
"#;

fn mapping() -> Mapping {
    Mapping::parse(MAPPING, "consumers.toml").expect("valid")
}

fn record(id: &str, kind: &str, contact: &str, tags: &[&str]) -> Record {
    let body = json!({
        "type": kind, "locationId": "loc", "id": contact, "email": format!("{contact}@example.com"),
        "dateAdded": "2026-11-20T10:00:00Z", "tags": tags, "webhookId": id, "timestamp": "2026-11-20T23:00:00Z"
    });
    let job = EnrichJob::Webhook {
        key: id.into(),
        received_at: now(),
        body: body.to_string(),
    };
    Record {
        message_id: format!("m-{id}"),
        body: serde_json::to_string(&job).expect("json"),
        group_id: Some(format!("loc:{contact}")),
    }
}

fn ids(failed: &[Retry]) -> Vec<&str> {
    failed.iter().map(|r| r.message_id.as_str()).collect()
}

fn queued(queue: &MemoryQueue) -> Vec<DispatchJob> {
    queue
        .sent()
        .iter()
        .map(|m| serde_json::from_str(&m.body).expect("dispatch job"))
        .collect()
}

#[tokio::test]
async fn changes_to_one_contact_in_one_batch_see_each_other() {
    let (state, dispatch, dead) = (
        MemoryState::default(),
        MemoryQueue::default(),
        MemoryQueue::default(),
    );
    let records = [
        record("w1", "ContactCreate", "c1", &["a"]),
        record("w2", "ContactTagUpdate", "c1", &["a", "b"]),
    ];
    let failed = enrich_records(
        &mapping(),
        &NoGhl,
        &state,
        &dispatch,
        &dead,
        &records,
        now(),
    )
    .await;
    assert!(failed.is_empty());
    let names: Vec<(String, Option<String>)> = queued(&dispatch)
        .into_iter()
        .map(|j| (j.event.event_name, j.event.custom_data.content_name))
        .collect();
    assert_eq!(
        names,
        [
            ("Lead".into(), None),
            ("CompleteRegistration".into(), Some("a".into())),
            ("CompleteRegistration".into(), Some("b".into())),
        ],
        "tag a once, on creation; tag b once, on its update"
    );
}

#[tokio::test]
async fn a_failed_send_retries_the_record_its_group_and_forgets_nothing() {
    let (state, dispatch, dead) = (
        MemoryState::default(),
        MemoryQueue::default(),
        MemoryQueue::default(),
    );
    dispatch.fail_next(1);
    let records = [
        record("w1", "ContactCreate", "c1", &["a"]),
        record("w2", "ContactTagUpdate", "c1", &["a", "b"]),
        record("w3", "ContactCreate", "c2", &[]),
    ];
    let failed = enrich_records(
        &mapping(),
        &NoGhl,
        &state,
        &dispatch,
        &dead,
        &records,
        now(),
    )
    .await;
    assert_eq!(
        ids(&failed),
        ["m-w1", "m-w2"],
        "c1's later change waits for its first; c2 goes on"
    );
    assert_eq!(queued(&dispatch).len(), 1);

    // Redelivered, c1's creation still finds tag a new: nothing was remembered.
    let failed = enrich_records(
        &mapping(),
        &NoGhl,
        &state,
        &dispatch,
        &dead,
        &records[..2],
        now(),
    )
    .await;
    assert!(failed.is_empty());
    // The creation's Lead and tag a, then tag b: each exactly once.
    assert_eq!(queued(&dispatch).len(), 1 + 3);
}

#[tokio::test]
async fn a_job_redelivered_after_it_was_done_produces_nothing_more() {
    let (state, dispatch, dead) = (
        MemoryState::default(),
        MemoryQueue::default(),
        MemoryQueue::default(),
    );
    let first = [record("w1", "ContactCreate", "c1", &[])];
    // The same webhook, queued again past SQS's deduplication window: a new message id.
    let mut again = first[0].clone();
    again.message_id = "m-w1-later".into();
    for records in [&first[..], &[again][..]] {
        let failed =
            enrich_records(&mapping(), &NoGhl, &state, &dispatch, &dead, records, now()).await;
        assert!(failed.is_empty());
    }
    assert_eq!(queued(&dispatch).len(), 1, "one Lead, not two");
}

/// GHL answering every read with a rate limit.
struct LimitedGhl;

impl GhlReader for LimitedGhl {
    async fn contact(&self, _: &str, _: &str) -> Result<Contact, GhlError> {
        Err(GhlError::RateLimited {
            retry_after_ms: 7_500,
        })
    }
    async fn related(&self, _: &str, _: &str, _: Need) -> Result<Value, GhlError> {
        Err(GhlError::NotFound)
    }
}

#[tokio::test]
async fn a_ghl_rate_limit_retries_the_record_after_ghls_interval() {
    let (state, dispatch, dead) = (
        MemoryState::default(),
        MemoryQueue::default(),
        MemoryQueue::default(),
    );
    let fetching =
        Mapping::parse(&MAPPING.replace("needs = []\n", ""), "fetching.toml").expect("valid");
    let records = [
        record("w1", "ContactCreate", "c1", &[]),
        record("w2", "ContactTagUpdate", "c1", &["a"]),
    ];
    let failed = enrich_records(
        &fetching,
        &LimitedGhl,
        &state,
        &dispatch,
        &dead,
        &records,
        now(),
    )
    .await;
    assert_eq!(
        failed,
        [
            Retry {
                message_id: "m-w1".into(),
                after: Some(std::time::Duration::from_millis(7_500)),
            },
            Retry {
                message_id: "m-w2".into(),
                after: None,
            },
        ]
    );
    assert!(dispatch.sent().is_empty() && dead.sent().is_empty());
}

#[tokio::test]
async fn a_malformed_record_is_dead_lettered_alone() {
    let (state, dispatch, dead) = (
        MemoryState::default(),
        MemoryQueue::default(),
        MemoryQueue::default(),
    );
    let records = [
        Record {
            message_id: "m-bad".into(),
            body: "{not json".into(),
            group_id: Some("loc:c9".into()),
        },
        record("w1", "ContactCreate", "c1", &[]),
    ];
    let failed = enrich_records(
        &mapping(),
        &NoGhl,
        &state,
        &dispatch,
        &dead,
        &records,
        now(),
    )
    .await;
    assert!(failed.is_empty());
    let letter: Value = serde_json::from_str(&dead.sent()[0].body).expect("json");
    assert_eq!(letter["deadLetter"]["code"], "malformed_message");
    assert_eq!(letter["message"], "{not json");
    assert_eq!(queued(&dispatch).len(), 1);
}

/// Meta refusing any request that holds the event named `Bad`.
#[derive(Default)]
struct Meta {
    calls: Mutex<usize>,
    answer: Option<(u16, &'static str)>,
}

impl EventsApi for Meta {
    async fn post(
        &self,
        dataset_id: &str,
        request: &EventRequest,
    ) -> Result<(u16, String), String> {
        assert_eq!(dataset_id, "123");
        *self.calls.lock().expect("lock") += 1;
        if let Some((status, body)) = self.answer {
            return Ok((status, body.into()));
        }
        if request.data.iter().any(|e| e.event_name == "Bad") {
            return Ok((400, r#"{"error":{"code":100,"message":"Invalid parameter","error_user_msg":"bad event"}}"#.into()));
        }
        Ok((
            200,
            format!(r#"{{"events_received":{}}}"#, request.data.len()),
        ))
    }
}

fn dispatch_record(id: &str, name: &str, pixel: &str, time: &str) -> Record {
    let job = json!({"pixel": pixel, "source": id, "rule": "r", "event": {
        "event_name": name, "event_time": time.parse::<DateTime<Utc>>().expect("time").timestamp(),
        "event_id": id, "action_source": "system_generated", "user_data": {"em": ["abc"]}}});
    Record {
        message_id: format!("m-{id}"),
        body: job.to_string(),
        group_id: None,
    }
}

#[tokio::test]
async fn dispatch_delivers_the_good_and_dead_letters_each_bad_event_with_its_reason() {
    let (meta, dead) = (Meta::default(), MemoryQueue::default());
    let records = [
        dispatch_record("e1", "Lead", "main", "2026-11-20T12:00:00Z"),
        dispatch_record("e2", "Bad", "main", "2026-11-20T12:00:00Z"),
        dispatch_record("e3", "Lead", "main", "2026-11-01T12:00:00Z"),
        dispatch_record("e4", "Lead", "gone", "2026-11-20T12:00:00Z"),
        dispatch_record("e5", "Lead", "main", "2026-11-20T12:00:00Z"),
    ];
    let failed = dispatch_records(&mapping(), &meta, &dead, &records, now()).await;
    assert!(failed.is_empty(), "{failed:?}");
    let codes: Vec<(String, String)> = dead
        .sent()
        .iter()
        .map(|m| {
            let v: Value = serde_json::from_str(&m.body).expect("json");
            (
                v["deadLetter"]["source"].as_str().unwrap_or("").into(),
                v["deadLetter"]["code"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            ("m-e3".into(), "too_old".into()),
            ("m-e4".into(), "unknown_pixel".into()),
            ("e2".into(), "refused_by_meta".into())
        ]
    );
}

#[tokio::test]
async fn token_trouble_and_outages_hand_every_record_back_for_retry() {
    let dead = MemoryQueue::default();
    let records = [
        dispatch_record("e1", "Lead", "main", "2026-11-20T12:00:00Z"),
        dispatch_record("e2", "Lead", "main", "2026-11-20T12:00:00Z"),
    ];
    for answer in [
        (400, r#"{"error":{"code":190,"message":"expired"}}"#),
        (503, "<html>"),
    ] {
        let meta = Meta {
            answer: Some(answer),
            ..Meta::default()
        };
        let failed = dispatch_records(&mapping(), &meta, &dead, &records, now()).await;
        assert_eq!(ids(&failed), ["m-e1", "m-e2"]);
        assert_eq!(
            *meta.calls.lock().expect("lock"),
            1,
            "one request for the pixel's events"
        );
    }
    assert!(dead.sent().is_empty(), "nothing dropped");
}
