//! Delivery written back into GHL on AWS's terms: the handlers over SQS and
//! DynamoDB in moto, GHL's writes stood in for. An event Meta took is written
//! back once (tag, fields, note) though dispatch handles its record twice; a
//! refused one becomes one task; GHL down holds the write, which lands once GHL
//! is back; and the echoes of the writes (the tag, the fields' `ContactUpdate`,
//! the note) fire no rule.

use aws_lambda_events::event::sqs::SqsBatchResponse;
use ghl_capi_tests::fixtures::{LOCATION, WRITE_BACK_WATCHERS, contact, webhook};
use ghl_capi_tests::writes_stand_in::WritesStandIn;
use serde_json::{Value, json};

use crate::stack::{GHL_TOKEN, ghl_has, stack};

/// A rule writing back everything on new contacts, one whose events Meta refuses
/// tasking its letters, and rules that would fire on anything the write-back
/// makes.
fn rules() -> String {
    r#"
[[rules]]
name = "welcome"
trigger = "contact.created"
event_name = "Contact"
needs = []
[rules.write_back]
tag = "capi:Contact"
note = true
fields = { sent_at = "contact.capi_sent_at", event_id = "contact.capi_event_id", score = "contact.capi_score" }

[[rules]]
name = "refused"
trigger = "contact.created"
event_name = "Refused"
needs = []
[rules.write_back]
task_on_dead_letter = true
"#
    .to_owned()
        + WRITE_BACK_WATCHERS
}

fn names(events: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = events
        .iter()
        .map(|e| e["event_name"].as_str().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn delivery_is_written_back_once_held_through_ghls_outage_and_its_echoes_fire_nothing() {
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let emf = crate::common::Emf::start();
    let s = stack(&rules()).await;
    let writes = WritesStandIn::default();
    writes.mount(&s.ghl, GHL_TOKEN).await;
    // Two of the three fields are known to the location: written by id.
    let known = [
        ("f-at", "contact.capi_sent_at"),
        ("f-id", "contact.capi_event_id"),
    ];
    writes.serve_fields(&s.ghl, LOCATION, &known).await;
    let ann = contact("c-ann", "ann@example.com", &[]);
    ghl_has(&s.ghl, &ann).await;
    // GHL takes no writes at first.
    writes.set_down(true);

    assert_eq!(
        s.deliver(webhook("ContactCreate", "wh-1", ann.clone()))
            .await
            .0,
        200
    );
    let first = s.receive(&s.enrich_url).await;
    let handled = s.enrichment.handle(&first).await;
    s.delete_done(&s.enrich_url, &first, &handled).await;
    // Dispatch handles its batch twice, as if SQS redelivered it.
    let batch = s.receive_up_to(&s.dispatch_url, 10).await;
    assert_eq!(batch.records.len(), 3, "Lead, Contact and Refused");
    for _ in 0..2 {
        let answer = s.dispatch.handle(&batch).await;
        assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    }
    s.delete_done(&s.dispatch_url, &batch, &SqsBatchResponse::default())
        .await;
    // The write-backs wait through GHL's outage.
    for _ in 0..3 {
        let event = s.receive(&s.enrich_url).await;
        let answer = s.enrichment.handle(&event).await;
        assert_eq!(
            answer.batch_item_failures.len(),
            event.records.len(),
            "held"
        );
    }
    assert!(writes.writes().is_empty());
    writes.set_down(false);
    s.drain().await;

    assert_eq!(names(&s.meta.events()), ["Contact", "Lead"]);
    let event_id = s
        .meta
        .events()
        .iter()
        .find(|e| e["event_name"] == "Contact")
        .and_then(|e| e["event_id"].as_str().map(str::to_owned))
        .expect("its id");
    let tags = writes.of("tags");
    assert_eq!(tags.len(), 1, "{:#?}", writes.writes());
    assert_eq!(tags[0].path, "/contacts/c-ann/tags");
    assert_eq!(tags[0].body, json!({"tags": ["capi:Contact"]}));
    let fields = writes.of("fields");
    assert_eq!(fields.len(), 1);
    let set = fields[0].body["customFields"]
        .as_array()
        .expect("fields")
        .clone();
    assert_eq!(set.len(), 3);
    let by_id = |id: &str| {
        set.iter()
            .find(|f| f["id"] == id)
            .map(|f| f["field_value"].clone())
    };
    assert_eq!(by_id("f-id"), Some(json!(event_id)), "{set:?}");
    assert!(by_id("f-at").is_some_and(|at| at.as_str().is_some_and(|t| t.ends_with('Z'))));
    // The location does not know the third: written by key, as GHL's docs allow.
    assert!(
        set.iter()
            .any(|f| f["key"] == "contact.capi_score" && f.get("id").is_none())
    );
    let notes = writes.of("notes");
    assert_eq!(notes.len(), 1);
    let note = notes[0].body["body"].as_str().expect("note").to_owned();
    assert!(
        note.starts_with("Sent Contact to Meta at ") && note.contains(&event_id),
        "{note}"
    );
    let tasks = writes.of("tasks");
    assert_eq!(tasks.len(), 1, "one task for the refused event");
    assert_eq!(
        tasks[0].body["title"],
        "Meta could not use this contact's event"
    );
    assert!(
        tasks[0].body["body"]
            .as_str()
            .is_some_and(|b| b.contains("cause refused_by_meta"))
    );
    assert!(emf.count("WriteBacks", &[("Kind", "note"), ("Outcome", "written")]) >= 1.0);
    assert_eq!(
        emf.count("WriteBacks", &[("Kind", "task"), ("Outcome", "written")]),
        1.0
    );
    // The refused event was lettered at each handling of its record; one task.
    let dead = s.dead_letters().await;
    assert!(
        !dead.is_empty() && dead.iter().all(|l| l["deadLetter"]["rule"] == "refused"),
        "only the refused event's letters: {dead:#?}"
    );

    // GHL tells of what was written: none of it fires a rule.
    let echoed = writes.echo_of(&ann);
    let sent_before = s.meta.events().len();
    for body in [
        webhook("ContactTagUpdate", "wh-2", echoed.clone()),
        webhook("ContactUpdate", "wh-3", echoed.clone()),
        webhook(
            "NoteCreate",
            "wh-4",
            json!({"id": "n1", "contactId": "c-ann", "body": note}),
        ),
    ] {
        assert_eq!(s.deliver(body).await.0, 200);
    }
    s.drain().await;
    assert_eq!(s.meta.events().len(), sent_before, "{:#?}", s.meta.events());
    assert_eq!(emf.count("Skipped", &[("Reason", "own_write_back")]), 1.0);

    // A person's change after it still fires.
    let mut edited = echoed;
    edited["firstName"] = json!("Anna");
    assert_eq!(
        s.deliver(webhook("ContactUpdate", "wh-5", edited)).await.0,
        200
    );
    s.drain().await;
    assert_eq!(names(&s.meta.events()[sent_before..]), ["Updated"]);
    assert_eq!(writes.of("notes").len(), 1, "Updated writes nothing back");
}
