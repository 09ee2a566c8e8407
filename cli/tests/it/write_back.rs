//! Delivery written back into GHL through `ghl-capi serve` as a real process: a
//! new contact's Lead, once Meta took it, comes back to GHL as a tag, custom
//! fields and a note, once though GHL delivered the webhook twice; GHL's echoes of
//! those writes fire no rule; the contact's trace says what was written.

use std::process::Command;
use std::time::Duration;

use ghl_capi_tests::fixtures::{self, contact, webhook};
use ghl_capi_tests::stand_in::{MetaStandIn, ghl_serves};
use ghl_capi_tests::writes_stand_in::WritesStandIn;
use serde_json::json;
use wiremock::MockServer;

use crate::serve::{free_port, start_with, try_deliver};

/// The fixture, its `lead` rule writing back, and rules that would fire on the
/// write-back's tag, update and note.
fn mapping() -> String {
    fixtures::writing_back(&fixtures::mapping_text_with_token(
        r#"{ env = "TEST_META_TOKEN" }"#,
    ))
}

/// Waits (up to 5 s) for `done`, then a little longer for what should not come.
async fn settle(done: impl Fn() -> bool) {
    for _ in 0..100 {
        if done() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_meta_took_is_written_back_into_ghl_once_and_its_echoes_fire_nothing() {
    let (ghl, graph) = (MockServer::start().await, MockServer::start().await);
    let ann = contact("c-ann", "ann@example.com", &[]);
    ghl_serves(&ghl, &ann, "pit-local").await;
    let writes = WritesStandIn::default();
    writes.mount(&ghl, "pit-local").await;
    let meta = MetaStandIn::expecting_token("EAAB-local");
    meta.mount(&graph, fixtures::DATASET).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("mapping.toml");
    std::fs::write(&file, mapping()).expect("mapping written");
    let data = dir.path().join("data");
    let server = start_with(&data, &file, (&ghl.uri(), &graph.uri()), free_port(), &[]).await;
    let http = reqwest::Client::new();

    // GHL delivers the new contact twice.
    let created = webhook("ContactCreate", "wh-1", ann.clone());
    for _ in 0..2 {
        assert_eq!(
            try_deliver(&http, &server.url, created.clone()).await,
            Some(200)
        );
    }
    settle(|| writes.of("notes").len() == 1).await;
    let sent = meta.events();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    let event_id = sent[0]["event_id"].as_str().expect("id").to_owned();
    assert_eq!(writes.of("tags").len(), 1, "{:#?}", writes.writes());
    assert_eq!(writes.of("tags")[0].body, json!({"tags": ["capi:Lead"]}));
    let fields = writes.of("fields");
    assert_eq!(fields.len(), 1);
    let set = fields[0].body["customFields"]
        .as_array()
        .expect("fields")
        .clone();
    assert!(
        set.iter()
            .any(|f| f["key"] == "contact.capi_event_id" && f["field_value"] == event_id.as_str())
    );
    let note = writes.of("notes")[0].body["body"]
        .as_str()
        .expect("note")
        .to_owned();
    assert!(
        note.starts_with("Sent Lead to Meta at ") && note.contains(&event_id),
        "{note}"
    );

    // GHL tells of the tag, the fields and the note: nothing fires.
    let echoed = writes.echo_of(&ann);
    let echoes = [
        webhook("ContactTagUpdate", "wh-2", echoed.clone()),
        webhook("ContactUpdate", "wh-3", echoed),
        webhook(
            "NoteCreate",
            "wh-4",
            json!({"id": "n1", "contactId": "c-ann", "body": note}),
        ),
    ];
    for body in echoes {
        assert_eq!(try_deliver(&http, &server.url, body).await, Some(200));
    }
    settle(|| false).await;
    assert_eq!(meta.events().len(), 1, "{:#?}", meta.events());
    assert_eq!(
        writes.writes().len(),
        3,
        "written once: {:#?}",
        writes.writes()
    );

    // The contact's trace says what was written back, and that the update was ours.
    let trace = Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .args(["trace", "--contact", "c-ann", "--data-dir"])
        .arg(&data)
        .output()
        .expect("trace runs");
    let told = String::from_utf8_lossy(&trace.stdout);
    let wrote = told
        .lines()
        .find(|l| l.contains("written back into GHL"))
        .unwrap_or_else(|| panic!("{told}"));
    assert!(
        wrote.contains("wrote=tag fields note") && wrote.contains("rule=lead"),
        "{wrote}"
    );
    assert!(told.contains("the echo of our own write-back"), "{told}");
    drop(server);
}

#[test]
fn mapping_check_says_what_each_rule_writes_back() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("mapping.toml");
    std::fs::write(&file, mapping()).expect("mapping written");
    let out = Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .args(["mapping", "check"])
        .arg(&file)
        .output()
        .expect("runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    let lead = said
        .lines()
        .find(|l| l.contains("rule lead:"))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(
        lead.ends_with(
            "; writes back tag capi:Lead, event_id into contact.capi_event_id, \
                        score into contact.capi_score, sent_at into contact.capi_sent_at, a note, \
                        a task per letter's cause"
        ),
        "{lead}"
    );
    assert!(
        !said
            .lines()
            .any(|l| l.contains("rule vip:") && l.contains("writes back"))
    );
}
