//! The enrichment and dispatch functions' batch logic: what is queued, delivered,
//! dead-lettered, and which records are handed back for retry.

use chrono::{DateTime, Utc};
use ghl_capi::batch::Retry;
use ghl_capi::dispatch::consumer::dispatch_records;
use ghl_capi::enrich::consumer::enrich_records;
use ghl_capi::ghl::{Contact, GhlError};
use ghl_capi::jobs::{DispatchJob, EnrichJob};
use ghl_capi::ports::queue::{MemoryQueue, Record};
use ghl_capi::ports::state::MemoryState;
use ghl_capi_tests::fakes::{FakeGhl, FakeMeta};
use ghl_capi_tests::fixtures::mapping;
use serde_json::{Value, json};

fn now() -> DateTime<Utc> {
    "2026-11-21T00:00:00Z".parse().expect("time")
}

fn contact_json(contact: &str, tags: &[&str]) -> Value {
    json!({"id": contact, "locationId": "loc", "email": format!("{contact}@example.com"),
        "dateAdded": "2026-11-20T10:00:00Z", "tags": tags})
}

/// GHL holding the contacts the records below are about.
fn ghl() -> FakeGhl {
    let contacts: Vec<Contact> = ["c1", "c2"]
        .iter()
        .map(|id| serde_json::from_value(contact_json(id, &[])).expect("contact"))
        .collect();
    FakeGhl::with(&contacts)
}

fn record(id: &str, kind: &str, contact: &str, tags: &[&str]) -> Record {
    let mut body = contact_json(contact, tags);
    body["type"] = kind.into();
    body["webhookId"] = id.into();
    body["timestamp"] = "2026-11-20T23:00:00Z".into();
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

/// The enrichment stage's state and queues, in memory.
#[derive(Default)]
struct Enrichment {
    state: MemoryState,
    dispatch: MemoryQueue,
    dead: MemoryQueue,
}

impl Enrichment {
    /// One batch, against `ghl`: the records to retry.
    async fn run(&self, ghl: &FakeGhl, records: &[Record]) -> Vec<Retry> {
        let (state, dispatch, dead) = (&self.state, &self.dispatch, &self.dead);
        enrich_records(&mapping(), ghl, state, dispatch, dead, records, now()).await
    }
}

#[tokio::test]
async fn changes_to_one_contact_in_one_batch_see_each_other() {
    let stage = Enrichment::default();
    let records = [
        record("w1", "ContactCreate", "c1", &["vip"]),
        record("w2", "ContactTagUpdate", "c1", &["vip", "gold"]),
    ];
    let failed = stage.run(&ghl(), &records).await;
    assert!(failed.is_empty());
    let names: Vec<(String, Option<String>)> = queued(&stage.dispatch)
        .into_iter()
        .map(|j| (j.event.event_name, j.event.custom_data.content_name))
        .collect();
    assert_eq!(
        names,
        [
            ("Lead".into(), None),
            ("CompleteRegistration".into(), Some("vip".into())),
            ("CompleteRegistration".into(), Some("gold".into())),
        ],
        "tag vip once, on creation; tag gold once, on its update"
    );
}

#[tokio::test]
async fn a_failed_send_retries_the_record_its_group_and_forgets_nothing() {
    let stage = Enrichment::default();
    stage.dispatch.fail_next(1);
    let records = [
        record("w1", "ContactCreate", "c1", &["vip"]),
        record("w2", "ContactTagUpdate", "c1", &["vip", "gold"]),
        record("w3", "ContactCreate", "c2", &[]),
    ];
    let failed = stage.run(&ghl(), &records).await;
    assert_eq!(
        ids(&failed),
        ["m-w1", "m-w2"],
        "c1's later change waits for its first; c2 goes on"
    );
    assert_eq!(queued(&stage.dispatch).len(), 1);

    // Redelivered, c1's creation still finds tag vip new: nothing was remembered.
    let failed = stage.run(&ghl(), &records[..2]).await;
    assert!(failed.is_empty());
    // The creation's Lead and tag vip, then tag gold: each exactly once.
    assert_eq!(queued(&stage.dispatch).len(), 1 + 3);
}

#[tokio::test]
async fn a_job_redelivered_after_it_was_done_produces_nothing_more() {
    let stage = Enrichment::default();
    let first = [record("w1", "ContactCreate", "c1", &[])];
    // The same webhook, queued again past SQS's deduplication window: a new message id.
    let mut again = first[0].clone();
    again.message_id = "m-w1-later".into();
    for records in [&first[..], &[again][..]] {
        let failed = stage.run(&ghl(), records).await;
        assert!(failed.is_empty());
    }
    assert_eq!(queued(&stage.dispatch).len(), 1, "one Lead, not two");
}

#[tokio::test]
async fn a_ghl_rate_limit_retries_the_record_after_ghls_interval() {
    let stage = Enrichment::default();
    let limited = FakeGhl::failing(GhlError::RateLimited {
        retry_after_ms: 7_500,
    });
    let records = [
        record("w1", "ContactCreate", "c1", &[]),
        record("w2", "ContactTagUpdate", "c1", &["vip"]),
    ];
    let failed = stage.run(&limited, &records).await;
    let waits: Vec<(&str, Option<std::time::Duration>, &str)> = failed
        .iter()
        .map(|r| (r.message_id.as_str(), r.after, r.reason.code))
        .collect();
    assert_eq!(
        waits,
        [
            (
                "m-w1",
                Some(std::time::Duration::from_millis(7_500)),
                "ghl_rate_limited"
            ),
            ("m-w2", None, "waiting_for_earlier_change"),
        ]
    );
    assert!(stage.dispatch.sent().is_empty() && stage.dead.sent().is_empty());
}

#[tokio::test]
async fn a_malformed_record_is_dead_lettered_alone() {
    let stage = Enrichment::default();
    let records = [
        Record {
            message_id: "m-bad".into(),
            body: "{not json".into(),
            group_id: Some("loc:c9".into()),
        },
        record("w1", "ContactCreate", "c1", &[]),
    ];
    let failed = stage.run(&ghl(), &records).await;
    assert!(failed.is_empty());
    let letter: Value = serde_json::from_str(&stage.dead.sent()[0].body).expect("json");
    assert_eq!(letter["deadLetter"]["code"], "malformed_message");
    assert_eq!(letter["message"], "{not json");
    assert_eq!(queued(&stage.dispatch).len(), 1);
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
    let (meta, dead) = (FakeMeta::default(), MemoryQueue::default());
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
        let meta = FakeMeta::answering(answer.0, answer.1);
        let failed = dispatch_records(&mapping(), &meta, &dead, &records, now()).await;
        assert_eq!(ids(&failed), ["m-e1", "m-e2"]);
        assert_eq!(
            meta.requests(),
            [("1234567890".to_owned(), 2)],
            "one request for the pixel's events"
        );
    }
    assert!(dead.sent().is_empty(), "nothing dropped");
}
