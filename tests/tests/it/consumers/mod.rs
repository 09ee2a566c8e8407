//! The enrichment and dispatch functions' batch logic over in-memory ports: what is
//! queued, delivered, dead-lettered, and which records are handed back for retry
//! ([`batches`]); how work is held through a partner's outage ([`holding`]).

mod audiences;
mod batches;
mod event_ids;
mod holding;
mod strangers;
mod write_back;

use chrono::{DateTime, Utc};
use ghl_capi::batch::Retry;
use ghl_capi::dispatch::consumer::DispatchConsumer;
use ghl_capi::enrich::consumer::EnrichConsumer;
use ghl_capi::ghl::Contact;
use ghl_capi::hold::HoldPolicy;
use ghl_capi::jobs::{DispatchJob, EnrichJob, LetterMessage};
use ghl_capi::mapping::Mapping;
use ghl_capi::ports::queue::{MemoryQueue, Record};
use ghl_capi::ports::state::{MemoryState, StateStore};
use ghl_capi_tests::fakes::{FakeGhl, FakeMeta};
use ghl_capi_tests::fixtures::mapping;
use serde_json::{Value, json};

pub(crate) fn now() -> DateTime<Utc> {
    "2026-11-21T00:00:00Z".parse().expect("time")
}

pub(crate) fn contact_json(contact: &str, tags: &[&str]) -> Value {
    json!({"id": contact, "locationId": "loc", "email": format!("{contact}@example.com"),
        "dateAdded": "2026-11-20T10:00:00Z", "tags": tags})
}

/// GHL holding the contacts the records below are about.
pub(crate) fn ghl() -> FakeGhl {
    let contacts: Vec<Contact> = ["c1", "c2"]
        .iter()
        .map(|id| serde_json::from_value(contact_json(id, &[])).expect("contact"))
        .collect();
    FakeGhl::with(&contacts)
}

pub(crate) fn record(id: &str, kind: &str, contact: &str, tags: &[&str]) -> Record {
    let mut body = contact_json(contact, tags);
    body["type"] = kind.into();
    body["webhookId"] = id.into();
    body["timestamp"] = "2026-11-20T23:00:00Z".into();
    let job = EnrichJob::Webhook {
        key: id.into(),
        received_at: now(),
        body: body.to_string(),
    };
    let mut record = Record::new(
        format!("m-{id}"),
        serde_json::to_string(&job).expect("json"),
    );
    record.group_id = Some(format!("loc:{contact}"));
    record
}

pub(crate) fn ids(failed: &[Retry]) -> Vec<&str> {
    failed.iter().map(|r| r.message_id.as_str()).collect()
}

pub(crate) fn queued(queue: &MemoryQueue) -> Vec<DispatchJob> {
    queue
        .sent()
        .iter()
        .map(|m| serde_json::from_str(&m.body).expect("dispatch job"))
        .collect()
}

/// The letters written so far.
pub(crate) fn letters(stages: &Stages) -> Vec<LetterMessage> {
    stages
        .dead
        .sent()
        .iter()
        .map(|m| serde_json::from_str(&m.body).expect("a letter"))
        .collect()
}

/// The enrichment queue's receive limit, as the template sets it.
pub(crate) const MAX_RECEIVES: u32 = 1000;

/// The stages' state and queues, in memory.
#[derive(Default)]
pub(crate) struct Stages {
    pub(crate) state: MemoryState,
    pub(crate) source: MemoryQueue,
    pub(crate) dispatch: MemoryQueue,
    pub(crate) dead: MemoryQueue,
    /// What dispatch queued for enrichment (write-backs into GHL).
    pub(crate) enrich: MemoryQueue,
}

impl Stages {
    /// One enrichment batch, against `ghl`: the records to retry.
    pub(crate) async fn run(&self, ghl: &FakeGhl, records: &[Record]) -> Vec<Retry> {
        self.run_at(ghl, records, now()).await
    }

    /// One enrichment batch at `at`.
    pub(crate) async fn run_at(
        &self,
        ghl: &FakeGhl,
        records: &[Record],
        at: DateTime<Utc>,
    ) -> Vec<Retry> {
        self.enrich_with(&mapping(), ghl, records, at).await
    }

    /// One enrichment batch at `at`, under `mapping`.
    pub(crate) async fn enrich_with(
        &self,
        mapping: &Mapping,
        ghl: &FakeGhl,
        records: &[Record],
        at: DateTime<Utc>,
    ) -> Vec<Retry> {
        self.enrich_over(&self.state, mapping, ghl, records, at)
            .await
    }

    /// One enrichment batch at `at`, under `mapping`, keeping its state in `state`.
    pub(crate) async fn enrich_over(
        &self,
        state: &impl StateStore,
        mapping: &Mapping,
        ghl: &FakeGhl,
        records: &[Record],
        at: DateTime<Utc>,
    ) -> Vec<Retry> {
        let consumer = EnrichConsumer {
            mapping,
            ghl,
            state,
            source: &self.source,
            dispatch: &self.dispatch,
            dead: &self.dead,
            policy: HoldPolicy::default(),
            max_receives: MAX_RECEIVES,
        };
        consumer.handle(records, at).await
    }

    /// One dispatch batch, against `meta`: the records to retry in place.
    pub(crate) async fn send(&self, meta: &FakeMeta, records: &[Record]) -> Vec<Retry> {
        self.send_at(meta, records, now()).await
    }

    /// One dispatch batch at `at`.
    pub(crate) async fn send_at(
        &self,
        meta: &FakeMeta,
        records: &[Record],
        at: DateTime<Utc>,
    ) -> Vec<Retry> {
        self.send_with(&mapping(), meta, records, at).await
    }

    /// One dispatch batch at `at`, under `mapping`.
    pub(crate) async fn send_with(
        &self,
        mapping: &Mapping,
        meta: &FakeMeta,
        records: &[Record],
        at: DateTime<Utc>,
    ) -> Vec<Retry> {
        let consumer = DispatchConsumer {
            mapping,
            capi: meta,
            state: &self.state,
            source: &self.source,
            dead: &self.dead,
            enrich: Some(&self.enrich),
            policy: HoldPolicy::default(),
        };
        consumer.handle(records, at).await
    }
}

/// A dispatch job for `pixel`: event `name` at `time`, its id `id`.
pub(crate) fn dispatch_record(id: &str, name: &str, pixel: &str, time: &str) -> Record {
    let job = json!({"pixel": pixel, "source": id, "rule": "r", "event": {
        "event_name": name, "event_time": time.parse::<DateTime<Utc>>().expect("time").timestamp(),
        "event_id": id, "action_source": "system_generated", "user_data": {"em": ["abc"]}}});
    Record::new(format!("m-{id}"), job.to_string())
}
