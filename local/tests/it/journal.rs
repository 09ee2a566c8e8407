//! The audit journal: what the layer keeps of a log line, how long, and the
//! journey a trace picks from it.

use std::time::Duration;

use ghl_capi_local::journal::{self, Entry, Subject};
use ghl_capi_local::store::Store;
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("store.db")).expect("store");
    (dir, store)
}

/// Logs the pipeline's lines for one contact through the journal's layer, and
/// stores what it keeps.
async fn journal_of_lines(store: &Store) {
    let (layer, inbox) = journal::channel();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(inbox.write(store.clone(), Duration::from_secs(3600), stopped));
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        // As the library logs them (its target is `ghl_capi…`).
        tracing::info!(target: "ghl_capi::intake", method = "POST", path = "/webhooks/ghl",
            status = 200, outcome = "accepted", webhook_id = "w1", kind = "ContactTagUpdate", "request");
        tracing::info!(target: "ghl_capi::enrich", webhook_id = "w1", location_id = "loc1",
            contact_id = "c1", rule = "vip", unmet = "contact.tags has_tag", "rule did not fire");
        // Audit detail: the functions' logs leave it out, the journal keeps it.
        tracing::debug!(target: ghl_capi::telemetry::DETAIL, webhook_id = "w1", location_id = "loc1",
            contact_id = "c1", rule = "webinar", unmet = "trigger.tag one_of", "rule did not fire");
        tracing::info!(target: "ghl_capi::enrich", webhook_id = "w1", location_id = "loc1",
            contact_id = "c1", rule = "buyer", event_id = "e1", event_name = "Purchase",
            identifiers = "em ph", email = "jane@example.com", "event built");
        tracing::info!(target: "ghl_capi::dispatch", source = "w1", event_id = "e1",
            pixel = "main", fbtrace_id = "T1", events_received = 1u64, "event sent");
        tracing::info!(target: "ghl_capi::enrich", webhook_id = "w2", location_id = "loc1",
            contact_id = "c2", rule = "buyer", event_id = "e2", "event built");
        // Not the pipeline's, or about nothing: not kept.
        tracing::info!(target: "hyper", webhook_id = "w1", "connection");
        tracing::info!(target: "ghl_capi::dispatch", "a batch");
        tracing::debug!(target: "ghl_capi::enrich", webhook_id = "w1", "detail");
    });
    stop.send(true).expect("writer running");
    writer.await.expect("writer ends");
}

#[tokio::test]
async fn the_journal_keeps_ids_and_codes_and_never_a_contacts_data() {
    let (_dir, store) = store();
    journal_of_lines(&store).await;
    let all = store
        .journal_of(&Subject::Webhook("w1".into()), 0)
        .expect("read");
    let messages: Vec<&str> = all.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "request",
            "rule did not fire",
            "rule did not fire",
            "event built",
            "event sent"
        ]
    );
    assert_eq!(
        (all[1].level, all[2].level),
        ("INFO", "DEBUG"),
        "detail is kept, as detail"
    );
    let built = &all[3];
    assert_eq!(built.text("event_id"), Some("e1"));
    assert_eq!(built.text("identifiers"), Some("em ph"));
    assert!(
        !built.fields.contains_key("email"),
        "a field off the list is never kept: {:?}",
        built.fields
    );
    assert_eq!(
        all[4].webhook_id(),
        Some("w1"),
        "dispatch names it `source`"
    );
}

#[tokio::test]
async fn a_contacts_journey_is_its_webhooks_whole_and_nothing_of_others() {
    let (_dir, store) = store();
    journal_of_lines(&store).await;
    let contact = Subject::Contact {
        contact_id: "c1".into(),
        location_id: Some("loc1".into()),
    };
    let journey = contact.journey(store.journal_of(&contact, 0).expect("read"));
    let messages: Vec<&str> = journey.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "request",
            "rule did not fire",
            "rule did not fire",
            "event built",
            "event sent"
        ],
        "the request line has no contact: it comes with its webhook"
    );
    let elsewhere = Subject::Contact {
        contact_id: "c1".into(),
        location_id: Some("loc2".into()),
    };
    assert!(
        elsewhere
            .journey(store.journal_of(&elsewhere, 0).expect("read"))
            .is_empty(),
        "another location's contact of the same id is another contact"
    );
    let event = Subject::Event("e2".into());
    let journey = event.journey(store.journal_of(&event, 0).expect("read"));
    assert_eq!(journey.len(), 1);
    assert_eq!(journey[0].webhook_id(), Some("w2"));
}

#[tokio::test]
async fn entries_past_the_retention_are_deleted() {
    let (_dir, store) = store();
    let entry = |at_ms| Entry {
        at_ms,
        level: "INFO",
        message: "request".into(),
        fields: json!({"webhook_id": "w1"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    };
    store
        .append_journal(&[entry(1_000), entry(5_000)])
        .expect("append");
    assert_eq!(store.prune_journal(2_000).expect("prune"), 1);
    let left = store
        .journal_of(&Subject::Webhook("w1".into()), 0)
        .expect("read");
    assert_eq!(left.iter().map(|e| e.at_ms).collect::<Vec<_>>(), [5_000]);
}

#[test]
fn a_functions_log_line_reads_as_an_entry() {
    let line = json!({"level": "WARN", "fields": {"message": "dead letter", "source": "w9",
        "code": "contact_not_found", "email": "x@example.com"}});
    let entry = Entry::from_log_line(&line, 42).expect("an entry");
    assert_eq!(entry.level, "WARN");
    assert_eq!(entry.message, "dead letter");
    assert_eq!(entry.webhook_id(), Some("w9"));
    assert!(!entry.fields.contains_key("email"));
    assert!(Entry::from_log_line(&json!({"msg": "other"}), 1).is_none());
}
