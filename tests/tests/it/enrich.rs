//! Enrichment: what is fetched from GHL, what goes on to dispatch, what is dead-lettered.

use chrono::{DateTime, Utc};
use ghl_capi::enrich::{Enriched, Enricher, remember};
use ghl_capi::ghl::{Contact, GhlError};
use ghl_capi::hold::HoldPolicy;
use ghl_capi::jobs::{ConversionJob, DeadLetter, DispatchJob, EnrichJob};
use ghl_capi::mapping::Mapping;
use ghl_capi::ports::state::MemoryState;
use ghl_capi_tests::fakes::FakeGhl;
use ghl_capi_tests::{fixtures, read_reference};
use serde_json::{Value, json};

const NOW: &str = "2026-11-21T00:00:00Z";

/// Enriches jobs in order, remembering each job's tags as the consumer does once
/// its outputs are queued.
async fn enrich_batch(
    mapping: &Mapping,
    ghl: &FakeGhl,
    state: &MemoryState,
    jobs: &[EnrichJob],
    now: DateTime<Utc>,
) -> Vec<Enriched> {
    let mut enricher = Enricher::new(mapping, ghl, state, HoldPolicy::default());
    let mut outcomes = Vec::new();
    for job in jobs {
        let outcome = enricher.enrich(job, now).await;
        if let Enriched::Done {
            seen: Some(seen), ..
        } = &outcome
        {
            remember(state, seen, None).await.expect("remembered");
        }
        outcomes.push(outcome);
    }
    outcomes
}

fn now() -> DateTime<Utc> {
    NOW.parse().expect("time")
}

/// The built-in rules (and `extra` ones) feeding the fixture's pixels.
fn mapping(extra: &str) -> Mapping {
    let text = ghl_capi::mapping::DEFAULT_MAPPING.to_owned() + extra;
    let mut mapping = Mapping::parse(&text, "test mapping").expect("valid");
    mapping.pixels = fixtures::mapping().pixels;
    mapping
}

fn contact(id: &str, tags: &[&str]) -> Contact {
    serde_json::from_value(json!({
        "id": id, "locationId": "loc", "email": format!("{id}@example.com"), "country": "US",
        "dateAdded": "2026-11-20T10:00:00Z", "tags": tags,
        "attributionSource": {"fbclid": "IwAR-click", "ip": "203.0.113.9", "userAgent": "UA"}
    }))
    .expect("contact")
}

/// A webhook job for `body` (GHL's flat JSON), as intake queues it.
fn webhook_job(key: &str, body: Value) -> EnrichJob {
    EnrichJob::Webhook {
        key: key.into(),
        received_at: now(),
        body: body.to_string(),
    }
}

fn contact_webhook(kind: &str, key: &str, id: &str, tags: &[&str]) -> EnrichJob {
    let mut body = serde_json::to_value(contact(id, tags)).expect("json");
    body["type"] = kind.into();
    body["timestamp"] = "2026-11-20T23:59:00Z".into();
    body["webhookId"] = key.into();
    webhook_job(key, body)
}

fn done(outcome: &Enriched) -> (&[DispatchJob], &[DeadLetter]) {
    match outcome {
        Enriched::Done {
            dispatch,
            dead_letters,
            ..
        } => (dispatch, dead_letters),
        Enriched::Retry { reason, .. } => panic!("retry: {reason:?}"),
    }
}

#[tokio::test]
async fn a_new_contact_is_fetched_once_per_batch_and_sent_to_its_pixel() {
    let ghl = FakeGhl::with(&[contact("c1", &[])]);
    let state = MemoryState::default();
    let won = json!({"type": "OpportunityStatusUpdate", "locationId": "loc", "id": "o1", "contactId": "c1",
        "status": "won", "monetaryValue": 10, "timestamp": "2026-11-20T23:00:00Z"});
    let jobs = [
        contact_webhook("ContactCreate", "w1", "c1", &[]),
        contact_webhook("ContactUpdate", "w2", "c1", &[]),
        webhook_job("w3", won),
    ];
    let outcomes = enrich_batch(&mapping(""), &ghl, &state, &jobs, now()).await;
    let (dispatch, dead) = done(&outcomes[0]);
    assert!(dead.is_empty(), "{dead:?}");
    assert_eq!(dispatch.len(), 1);
    assert_eq!(
        (dispatch[0].pixel.as_str(), dispatch[0].rule.as_str()),
        ("main", "new-contact-lead")
    );
    assert_eq!(
        dispatch[0].event.user_data.fbc.as_deref(),
        Some("fb.1.1795168800000.IwAR-click")
    );
    // The update fires no rule of the built-in mapping, so it fetches nothing; the
    // purchase needs the same contact, already fetched for this batch.
    assert!(done(&outcomes[1]).0.is_empty());
    assert_eq!(done(&outcomes[2]).0[0].event.event_name, "Purchase");
    assert_eq!(ghl.reads(), ["contact c1"]);
}

#[tokio::test]
async fn a_won_opportunity_fetches_its_contact_and_becomes_a_purchase() {
    let ghl = FakeGhl::with(&[contact("cJAWDskpkJHbRbhAT7bs", &[])]);
    let mut body: Value =
        serde_json::from_str(&read_reference("ghl/webhooks/OpportunityStatusUpdate.json"))
            .expect("json");
    body["status"] = "won".into();
    body["timestamp"] = "2026-11-20T23:00:00Z".into();
    let outcomes = enrich_batch(
        &mapping(""),
        &ghl,
        &MemoryState::default(),
        &[webhook_job("w1", body)],
        now(),
    )
    .await;
    let (dispatch, _) = done(&outcomes[0]);
    assert_eq!(dispatch[0].event.event_name, "Purchase");
    assert_eq!(dispatch[0].event.custom_data.value, Some(40.0));
}

#[tokio::test]
async fn a_contact_ghl_no_longer_has_is_dead_lettered_and_rate_limits_retry() {
    let job = contact_webhook("ContactCreate", "w1", "gone", &[]);
    let outcomes = enrich_batch(
        &mapping(""),
        &FakeGhl::default(),
        &MemoryState::default(),
        std::slice::from_ref(&job),
        now(),
    )
    .await;
    let (_, dead) = done(&outcomes[0]);
    assert_eq!(
        (dead[0].code.as_str(), dead[0].source.as_str()),
        ("contact_not_found", "w1")
    );

    let limited = FakeGhl::failing(GhlError::RateLimited {
        retry_after_ms: 10_000,
    });
    let outcomes = enrich_batch(
        &mapping(""),
        &limited,
        &MemoryState::default(),
        &[job],
        now(),
    )
    .await;
    assert!(
        matches!(&outcomes[0], Enriched::Retry { reason, after, .. }
            if reason.text.contains("rate limit") && after.as_millis() == 10_000),
        "GHL's interval becomes the wait: {outcomes:?}"
    );
}

#[tokio::test]
async fn an_event_meta_would_refuse_is_dead_lettered_with_its_reason() {
    let ghl = FakeGhl::with(&[contact("c1", &[])]);
    let late = "2026-12-30T00:00:00Z".parse().expect("time");
    let outcomes = enrich_batch(
        &mapping(""),
        &ghl,
        &MemoryState::default(),
        &[contact_webhook("ContactCreate", "w1", "c1", &[])],
        late,
    )
    .await;
    let (dispatch, dead) = done(&outcomes[0]);
    assert!(dispatch.is_empty());
    assert_eq!(
        (dead[0].code.as_str(), dead[0].rule.as_deref()),
        ("too_old", Some("new-contact-lead"))
    );
}

const TAG_RULE: &str = "[[rules]]\nname = \"webinar\"\ntrigger = \"contact.tag_added\"\ntags = \"webinar\"\nevent_name = \"CompleteRegistration\"\nneeds = []\n";

#[tokio::test]
async fn tag_added_fires_once_on_the_transition() {
    let ghl = FakeGhl::default();
    let state = MemoryState::default();
    let m = mapping(TAG_RULE);
    let run = |job: EnrichJob| {
        let (m, ghl, state) = (&m, &ghl, &state);
        async move { enrich_batch(m, ghl, state, &[job], now()).await.remove(0) }
    };
    // First sight of an existing contact: its tags are the baseline, nothing fires.
    let first = run(contact_webhook(
        "ContactTagUpdate",
        "w1",
        "c1",
        &["webinar"],
    ))
    .await;
    assert!(done(&first).0.is_empty());
    let removed = run(contact_webhook("ContactTagUpdate", "w2", "c1", &[])).await;
    assert!(done(&removed).0.is_empty());
    let added = run(contact_webhook(
        "ContactTagUpdate",
        "w3",
        "c1",
        &["Webinar"],
    ))
    .await;
    assert_eq!(done(&added).0[0].event.event_name, "CompleteRegistration");
    let repeated = run(contact_webhook("ContactUpdate", "w4", "c1", &["Webinar"])).await;
    assert!(
        done(&repeated).0.is_empty(),
        "already seen: no second event"
    );
    assert!(ghl.reads().is_empty(), "needs = [] fetches nothing");
}

#[tokio::test]
async fn related_records_are_fetched_only_when_a_rule_needs_them() {
    let rule = "[[rules]]\nname = \"budget\"\ntrigger = \"contact.created\"\nevent_name = \"QualifiedLead\"\nneeds = [\"notes\"]\n[[rules.when]]\nfield = \"notes\"\ncontains = \"budget approved\"\n";
    let ghl = FakeGhl::with(&[contact("c1", &[])]);
    let outcomes = enrich_batch(
        &mapping(rule),
        &ghl,
        &MemoryState::default(),
        &[contact_webhook("ContactCreate", "w1", "c1", &[])],
        now(),
    )
    .await;
    let names: Vec<&str> = done(&outcomes[0])
        .0
        .iter()
        .map(|d| d.event.event_name.as_str())
        .collect();
    assert_eq!(names, ["Lead", "QualifiedLead"]);
    assert_eq!(ghl.reads(), ["contact c1", "notes c1"]);
}

#[tokio::test]
async fn a_posted_conversion_keeps_its_event_id() {
    let ghl = FakeGhl::with(&[contact("c1", &[])]);
    let conversion = serde_json::from_value(json!({
        "locationId": "loc", "eventType": "Purchase", "timestamp": "2026-11-20T23:00:00Z",
        "value": 12.5, "currency": "USD", "eventId": "order-7"
    }))
    .expect("conversion");
    let job = EnrichJob::Conversion(ConversionJob::new("c1", now(), "order-7", conversion));
    let outcomes = enrich_batch(&mapping(""), &ghl, &MemoryState::default(), &[job], now()).await;
    let (dispatch, _) = done(&outcomes[0]);
    assert_eq!(dispatch[0].event.event_id.as_deref(), Some("order-7"));
    assert_eq!(dispatch[0].source, "order-7");
}

#[tokio::test]
async fn a_new_contact_counts_its_tags_as_added_and_an_unseen_ones_tags_are_its_baseline() {
    let ghl = FakeGhl::with(&[contact("c1", &["webinar"]), contact("c2", &["webinar"])]);
    let state = MemoryState::default();
    let jobs = [
        contact_webhook("ContactCreate", "w1", "c1", &["webinar"]),
        contact_webhook("ContactTagUpdate", "w2", "c2", &["webinar"]),
    ];
    let outcomes = enrich_batch(&mapping(TAG_RULE), &ghl, &state, &jobs, now()).await;
    let names = |outcome| -> Vec<String> {
        done(outcome)
            .0
            .iter()
            .map(|d| d.event.event_name.clone())
            .collect()
    };
    // A new contact had no tags before: each of its tags was just added.
    assert_eq!(names(&outcomes[0]), ["Lead", "CompleteRegistration"]);
    // A contact never seen: which tag changed is unknowable, so none fires...
    assert!(names(&outcomes[1]).is_empty());
    // ...and its tags are the baseline the next change is compared with.
    assert_eq!(
        ghl_capi::ports::state::StateStore::tags(&state, "loc", "c2")
            .await
            .expect("state"),
        Some(vec!["webinar".to_owned()])
    );
}

#[tokio::test]
async fn a_location_no_pixel_serves_is_dropped_before_any_ghl_call() {
    let ghl = FakeGhl::with(&[contact("c1", &[])]);
    let mut m = mapping("");
    for pixel in &mut m.pixels {
        pixel.locations = vec!["loc2".into()];
    }
    let outcomes = enrich_batch(
        &m,
        &ghl,
        &MemoryState::default(),
        &[contact_webhook("ContactCreate", "w1", "c1", &[])],
        now(),
    )
    .await;
    let (dispatch, dead) = done(&outcomes[0]);
    assert!(dispatch.is_empty() && dead.is_empty());
    assert!(
        ghl.reads().is_empty(),
        "GHL is never asked: {:?}",
        ghl.reads()
    );
}

#[tokio::test]
async fn one_failed_webhook_is_one_letter_listing_every_trigger_it_carried() {
    let outcomes = enrich_batch(
        &mapping(TAG_RULE),
        &FakeGhl::default(),
        &MemoryState::default(),
        &[contact_webhook(
            "ContactCreate",
            "w1",
            "gone",
            &["webinar", "vip"],
        )],
        now(),
    )
    .await;
    let (dispatch, dead) = done(&outcomes[0]);
    assert!(dispatch.is_empty());
    let [letter] = dead else {
        panic!("one letter for the job: {dead:?}")
    };
    assert_eq!(
        (letter.code.as_str(), letter.source.as_str()),
        ("contact_not_found", "w1")
    );
    assert_eq!(
        letter.triggers,
        [
            "contact.created",
            "contact.tag_added:webinar",
            "contact.tag_added:vip"
        ]
    );
}

#[tokio::test]
async fn a_kept_webhook_that_does_not_parse_is_lettered_with_the_parse_error() {
    let body = json!({"type": "ContactCreate", "locationId": "loc", "webhookId": "w1",
        "timestamp": "2026-11-20T23:59:00Z"});
    let outcomes = enrich_batch(
        &mapping(""),
        &FakeGhl::default(),
        &MemoryState::default(),
        &[webhook_job("w1", body)],
        now(),
    )
    .await;
    let (_, dead) = done(&outcomes[0]);
    assert_eq!(
        (dead[0].code.as_str(), dead[0].triggers.as_slice()),
        ("malformed_webhook", &["ContactCreate".to_owned()][..])
    );
    assert!(
        dead[0].reason.contains("missing field `id`"),
        "{}",
        dead[0].reason
    );
}

#[tokio::test]
async fn a_task_webhook_without_its_contact_is_lettered_saying_what_ghl_left_out() {
    let task = json!({"type": "TaskCreate", "locationId": "loc", "webhookId": "w-task",
        "timestamp": "2026-11-20T23:59:00Z", "id": "task-1", "title": "Call back",
        "dateAdded": "2026-11-20T23:58:00Z"});
    let rule = r#"
[[rules]]
name = "task-created"
trigger = "task.created"
event_name = "Contact"
"#;
    let ghl = FakeGhl::default();
    let outcomes = enrich_batch(
        &mapping(rule),
        &ghl,
        &MemoryState::default(),
        &[webhook_job("w-task", task.clone())],
        now(),
    )
    .await;
    let (dispatch, dead) = done(&outcomes[0]);
    assert!(dispatch.is_empty());
    assert_eq!(dead.len(), 1, "{outcomes:?}");
    assert_eq!(dead[0].code, "missing_contact");
    for words in ["without the contact's id", "issue 332", "task.created"] {
        assert!(dead[0].reason.contains(words), "{}", dead[0].reason);
    }
    assert!(ghl.reads().is_empty(), "GHL is not asked about nobody");

    // No rule waits on tasks: nothing to say.
    let outcomes = enrich_batch(
        &mapping(""),
        &ghl,
        &MemoryState::default(),
        &[webhook_job("w-task", task)],
        now(),
    )
    .await;
    let (dispatch, dead) = done(&outcomes[0]);
    assert!(dispatch.is_empty() && dead.is_empty(), "{outcomes:?}");
}

/// A workflow call's job as intake queues it, received at [`NOW`].
fn workflow_job(body: &Value) -> EnrichJob {
    use ghl_capi::ghl::workflow::WorkflowCall;
    let text = body.to_string();
    let call = WorkflowCall::parse(text.as_bytes()).expect("a workflow call");
    let id = ghl_capi::intake::workflow::event_id_of(&call);
    EnrichJob::Workflow(ghl_capi::jobs::WorkflowJob::new(&call, &id, now(), &text))
}

fn workflow_mapping() -> Mapping {
    let mut mapping = Mapping::parse(
        &format!("version = 1\n{}", fixtures::WORKFLOW_RULES),
        "workflow rules",
    )
    .expect("valid");
    mapping.pixels = fixtures::mapping().pixels;
    mapping
}

fn sha256(text: &str) -> String {
    ghl_capi::normalize::sha256_hex(text).as_str().to_owned()
}

#[tokio::test]
async fn the_standard_payload_carries_its_contact_and_attribution_so_ghl_is_not_read() {
    let ghl = FakeGhl::with(&[]);
    let job = workflow_job(&fixtures::workflow_call("standard"));
    let outcomes = enrich_batch(
        &workflow_mapping(),
        &ghl,
        &MemoryState::default(),
        std::slice::from_ref(&job),
        now(),
    )
    .await;
    let (dispatch, letters) = done(&outcomes[0]);
    assert!(letters.is_empty(), "{letters:?}");
    assert!(ghl.reads().is_empty(), "{:?}", ghl.reads());
    assert_eq!(dispatch.len(), 1, "{dispatch:?}");
    let event = serde_json::to_value(&dispatch[0].event).expect("json");
    assert_eq!(event["event_name"], "Schedule");
    assert_eq!(
        event["event_time"],
        now().timestamp(),
        "no trigger time: its arrival"
    );
    assert_eq!(
        event["user_data"]["em"],
        json!([sha256("wanda@example.com")])
    );
    assert_eq!(event["user_data"]["ct"], json!([sha256("berlin")]));
    assert!(
        event["user_data"]["fbc"]
            .as_str()
            .unwrap_or("")
            .ends_with(".IwAR-wf"),
        "{event}"
    );
    assert_eq!(event["custom_data"]["value"], 120.5);
    assert_eq!(event["custom_data"]["currency"], "EUR");
    assert_eq!(event["custom_data"]["content_name"], "Booked call");
    let EnrichJob::Workflow(queued) = &job else {
        panic!("a workflow job")
    };
    assert_eq!(
        event["event_id"],
        queued.event_id.as_str(),
        "the id intake answered with"
    );
    assert_eq!(
        (dispatch[0].trigger.as_str(), dispatch[0].source.as_str()),
        ("workflow.fired", queued.event_id.as_str())
    );
}

#[tokio::test]
async fn a_custom_body_reads_the_contact_from_ghl_and_other_names_are_read_alike() {
    let ghl = FakeGhl::with(&[contact("c-ann", &[]), contact("c-var", &[])]);
    let mut custom = fixtures::workflow_call("custom");
    custom["occurredAt"] = "2026-11-20T22:00:00Z".into();
    let mut other = custom.clone();
    other["workflow"] = "Onboarding".into();
    other["event"] = "CompleteRegistration".into();
    other["eventId"] = "onboarding-c-ann-1".into();
    let mut unnamed = custom.clone();
    unnamed["workflow"] = "Newsletter".into();
    unnamed.as_object_mut().expect("object").remove("event");
    let jobs = [
        workflow_job(&custom),
        workflow_job(&fixtures::workflow_call("variants")),
        workflow_job(&other),
        workflow_job(&unnamed),
    ];
    let outcomes = enrich_batch(
        &workflow_mapping(),
        &ghl,
        &MemoryState::default(),
        &jobs,
        now(),
    )
    .await;
    let events: Vec<Vec<Value>> = outcomes
        .iter()
        .map(|o| {
            done(o)
                .0
                .iter()
                .map(|d| serde_json::to_value(&d.event).expect("json"))
                .collect()
        })
        .collect();
    let booked = &events[0][0];
    assert_eq!(
        (booked["event_name"].as_str(), booked["event_id"].as_str()),
        (Some("Schedule"), Some("booked-c-ann-20261120090000"))
    );
    assert_eq!(
        booked["event_time"], 1_795_212_000,
        "the trigger's own time"
    );
    assert_eq!(booked["custom_data"]["value"], 75.0);
    assert_eq!(
        booked["user_data"]["em"],
        json!([sha256("c-ann@example.com")]),
        "read from GHL"
    );
    assert!(
        booked["custom_data"].get("plan").is_none(),
        "the call's custom data is not passed on unasked"
    );
    // snake_case names, the workflow by workflowName, attribution at the top level.
    let variant = &events[1][0];
    assert_eq!(
        (variant["event_name"].as_str(), variant["event_id"].as_str()),
        (Some("Schedule"), Some("booked-c-var-1"))
    );
    assert_eq!(events[2].len(), 1);
    assert_eq!(events[2][0]["event_name"], "CompleteRegistration");
    assert!(
        events[3].is_empty(),
        "no rule fires for a workflow no rule names without an event"
    );
    assert_eq!(
        variant["user_data"]["em"],
        json!([sha256("vera@example.com")])
    );
    // The variant carried its attribution, so only Ann was read, and once.
    assert_eq!(ghl.reads(), ["contact c-ann"]);
}

#[tokio::test]
async fn a_workflow_call_is_held_while_ghl_is_down_and_a_gone_contact_is_its_one_letter() {
    let mut custom = fixtures::workflow_call("custom");
    custom["occurredAt"] = "2026-11-20T22:00:00Z".into();
    let job = workflow_job(&custom);
    let down = FakeGhl::failing(GhlError::unavailable("reading a contact", "503"));
    let outcomes = enrich_batch(
        &workflow_mapping(),
        &down,
        &MemoryState::default(),
        std::slice::from_ref(&job),
        now(),
    )
    .await;
    assert!(
        matches!(&outcomes[0], Enriched::Retry { reason, triggers, .. }
            if reason.code == "ghl_unavailable" && triggers == &["workflow.fired"]),
        "held, not dropped: {outcomes:?}"
    );
    let limited = FakeGhl::failing(GhlError::RateLimited {
        retry_after_ms: 5_000,
    });
    let outcomes = enrich_batch(
        &workflow_mapping(),
        &limited,
        &MemoryState::default(),
        std::slice::from_ref(&job),
        now(),
    )
    .await;
    assert!(
        matches!(&outcomes[0], Enriched::Retry { after, .. } if after.as_millis() == 5_000),
        "GHL's interval: {outcomes:?}"
    );
    let outcomes = enrich_batch(
        &workflow_mapping(),
        &FakeGhl::with(&[]),
        &MemoryState::default(),
        &[job],
        now(),
    )
    .await;
    let (dispatch, letters) = done(&outcomes[0]);
    assert!(dispatch.is_empty());
    assert_eq!(
        (
            letters[0].code.as_str(),
            letters[0].source.as_str(),
            letters[0].triggers.as_slice()
        ),
        (
            "contact_not_found",
            "booked-c-ann-20261120090000",
            &["workflow.fired".to_owned()][..]
        )
    );
}

#[tokio::test]
async fn the_memory_state_swaps_a_record_only_from_what_it_holds() {
    ghl_capi_tests::contracts::swap_record_holds(&MemoryState::default()).await;
}

#[tokio::test]
async fn the_memory_state_adds_counters_up() {
    ghl_capi_tests::contracts::counts_add_up(&MemoryState::default(), true).await;
}
