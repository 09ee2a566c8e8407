//! The enrichment stage over in-memory ports, for tests that queue jobs as a stage
//! or an operation does and need what came of them.

use chrono::Utc;
use ghl_capi::batch::Retry;
use ghl_capi::enrich::consumer::EnrichConsumer;
use ghl_capi::ghl::{GhlReader, GhlWriter};
use ghl_capi::hold::HoldPolicy;
use ghl_capi::jobs::{AudienceJob, DispatchJob, DispatchMessage, EnrichJob};
use ghl_capi::mapping::Mapping;
use ghl_capi::ports::queue::{MemoryQueue, Outgoing, Record};
use ghl_capi::ports::state::MemoryState;
use serde_json::{Value, json};

/// GHL's webhook `body`, delivered now under `key` (its webhook id), as the
/// enrichment queue holds it.
pub fn webhook_message(key: String, mut body: Value) -> Outgoing {
    body["webhookId"] = json!(key);
    body["timestamp"] = json!(crate::contacts_stand_in::stamp(Utc::now()));
    let job = EnrichJob::Webhook {
        key,
        received_at: Utc::now(),
        body: body.to_string(),
    };
    job.outgoing().expect("a message")
}

/// Enriches `messages` (as queued, in order) in one batch: the dispatch jobs they
/// made. Fails the test if any job is retried or dead-lettered.
pub async fn enrich_messages(
    mapping: &Mapping,
    ghl: &(impl GhlReader + GhlWriter),
    state: &MemoryState,
    messages: &[Outgoing],
) -> Vec<DispatchJob> {
    let (events, audiences) = enrich_outputs(mapping, ghl, state, messages).await;
    assert!(audiences.is_empty(), "{audiences:?}");
    events
}

/// As [`enrich_messages`], with the audience changes they made too.
pub async fn enrich_outputs(
    mapping: &Mapping,
    ghl: &(impl GhlReader + GhlWriter),
    state: &MemoryState,
    messages: &[Outgoing],
) -> (Vec<DispatchJob>, Vec<AudienceJob>) {
    let (failed, dispatch, dead) = enrich_batch(mapping, ghl, state, messages).await;
    assert!(failed.is_empty(), "{failed:?}");
    assert!(dead.sent().is_empty(), "{:?}", dead.sent());
    let (mut events, mut audiences) = (Vec::new(), Vec::new());
    for message in dispatch.sent() {
        match DispatchMessage::parse(&message.body).expect("dispatch message") {
            DispatchMessage::Event(job) => events.push(*job),
            DispatchMessage::Audience(job) => audiences.push(*job),
        }
    }
    (events, audiences)
}

/// Enriches `messages` (as queued, in order) in one batch: the records handed
/// back for a retry, and the dispatch and dead-letter queues as it left them.
pub async fn enrich_batch(
    mapping: &Mapping,
    ghl: &(impl GhlReader + GhlWriter),
    state: &MemoryState,
    messages: &[Outgoing],
) -> (Vec<Retry>, MemoryQueue, MemoryQueue) {
    let records: Vec<Record> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut record = Record::new(format!("m{i}"), m.body.clone());
            record.group_id = m.group_id.clone();
            record
        })
        .collect();
    let (dispatch, dead, source) = (
        MemoryQueue::default(),
        MemoryQueue::default(),
        MemoryQueue::default(),
    );
    let consumer = EnrichConsumer {
        mapping,
        ghl,
        state,
        source: &source,
        dispatch: &dispatch,
        dead: &dead,
        policy: HoldPolicy::default(),
        max_receives: 10,
    };
    let failed = consumer.handle(&records, Utc::now()).await;
    (failed, dispatch, dead)
}
