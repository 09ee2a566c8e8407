//! Each shape of GHL's plain Webhook action (`tests/fixtures/workflows`), through
//! `serve` as a real process: an opportunity trigger's call and an appointment
//! trigger's call, each declaring the trigger it tells of, fire the rules a
//! marketplace webhook of the same change fires, read through the same
//! `opportunity.*` / `appointment.*` paths (and `custom.<display name>`), with the
//! same event ids: the webhook of a change a call already told sends nothing more.

use std::time::Duration;

use chrono::Utc;
use ghl_capi_tests::fixtures::{self, webhook, workflow_call};
use ghl_capi_tests::stand_in::{MetaStandIn, ghl_serves};
use serde_json::{Value, json};
use wiremock::MockServer;

use crate::serve::{free_port, letter_codes, start_with, try_deliver};

/// Beside the fixture mapping's own `won` rule (`opportunity.status_changed`,
/// `status = "won"`: a Purchase of `opportunity.monetaryValue`).
const RULES: &str = r#"
[[rules]]
name = "deal-booked"
trigger = "opportunity.stage_changed"
stage = "Booked"
event_name = "SubmitApplication"
[rules.custom_data]
content_name = { field = "custom.How can we help?" }

[[rules]]
name = "consultation-booked"
trigger = "appointment.booked"
appointment_status = "confirmed"
event_name = "Schedule"
[rules.custom_data]
start = { field = "appointment.startTime" }
"#;

/// `name`'s fixture, dated now, telling `trigger`.
fn shaped(name: &str, trigger: &str) -> Value {
    let mut body = workflow_call(name);
    let now = Utc::now().to_rfc3339();
    body["date_created"] = json!(now);
    if body["calendar"].is_object() {
        body["calendar"]["date_created"] = json!(now);
    }
    body["customData"]["trigger"] = json!(trigger);
    body
}

async fn call(url: &str, body: &Value) -> (u16, Value) {
    let answer = reqwest::Client::new()
        .post(format!("{url}/workflows/ghl/ck-shapes"))
        .json(body)
        .send()
        .await
        .expect("answered");
    let status = answer.status().as_u16();
    (status, answer.json().await.expect("a JSON answer"))
}

/// Meta's events once there are `n` (and a little longer, for any extra one).
async fn events(meta: &MetaStandIn, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        if meta.events().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    meta.events()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_captured_shape_fires_the_rule_a_webhook_of_the_same_change_fires() {
    let ghl = MockServer::start().await;
    let graph = MockServer::start().await;
    let meta = MetaStandIn::expecting_token("EAAB-local");
    meta.mount(&graph, fixtures::DATASET).await;
    let olga = json!({"id": "c-opp", "locationId": fixtures::LOCATION, "email": "olga@example.com",
        "dateAdded": Utc::now().to_rfc3339()});
    ghl_serves(&ghl, &olga, "pit-local").await;
    let dir = tempfile::tempdir().expect("dir");
    let mapping = dir.path().join("mapping.toml");
    let text = fixtures::mapping_text_with_token(r#"{ env = "TEST_META_TOKEN" }"#) + RULES;
    std::fs::write(&mapping, text).expect("mapping written");
    let data = dir.path().join("data");
    let keys = json!([{"id": "shapes", "key": "ck-shapes", "locations": [fixtures::LOCATION]}]);
    let env = [("CONVERSION_API_KEYS".to_owned(), keys.to_string())];
    let server = start_with(
        &data,
        &mapping,
        (&ghl.uri(), &graph.uri()),
        free_port(),
        &env,
    )
    .await;

    let won = shaped("opportunity", "opportunity.status_changed");
    let (status, answer) = call(&server.url, &won).await;
    assert_eq!(status, 200, "{answer}");
    let staged = shaped("opportunity", "opportunity.stage_changed");
    assert_eq!(call(&server.url, &staged).await.0, 200);
    let booked = shaped("appointment", "appointment.booked");
    assert_eq!(call(&server.url, &booked).await.0, 200);
    // What a workflow call cannot tell is refused, saying what it can.
    let (status, refused) = call(&server.url, &shaped("opportunity", "contact.tag_added")).await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused.to_string().contains("opportunity.stage_changed"),
        "{refused}"
    );

    let sent = events(&meta, 3).await;
    let named =
        |name: &str| -> Vec<&Value> { sent.iter().filter(|e| e["event_name"] == name).collect() };
    let purchase = named("Purchase");
    assert_eq!(purchase.len(), 1, "{sent:#?}");
    assert_eq!(purchase[0]["custom_data"]["value"], 4200.0, "lead_value");
    let application = named("SubmitApplication");
    assert_eq!(application.len(), 1, "the stage by its name: {sent:#?}");
    assert_eq!(
        application[0]["custom_data"]["content_name"], "A new roof before winter",
        "a custom field by its display name"
    );
    let schedule = named("Schedule");
    assert_eq!(schedule.len(), 1, "{sent:#?}");
    assert_eq!(
        schedule[0]["custom_data"]["start"], "2026-12-10T14:00:00-08:00",
        "read in the calendar's time zone"
    );
    assert!(
        ghl.received_requests().await.unwrap_or_default().is_empty(),
        "the calls carried their contacts"
    );

    // The marketplace webhook of the same change: the same event id, nothing more.
    let status_update = webhook(
        "OpportunityStatusUpdate",
        "wh-opp-won",
        json!({"id": "opp-roof-1", "contactId": "c-opp", "status": "won", "monetaryValue": 4200,
            "pipelineId": "pipe-sales", "pipelineStageId": "stage-booked"}),
    );
    let delivered = try_deliver(&reqwest::Client::new(), &server.url, status_update).await;
    assert_eq!(delivered, Some(200));
    for _ in 0..50 {
        if !ghl.received_requests().await.unwrap_or_default().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !ghl.received_requests().await.unwrap_or_default().is_empty(),
        "the webhook was handled: its contact was read"
    );
    // Read from GHL, it is mapped and dispatched within moments: a second
    // Purchase would have reached Meta by then.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = meta.events();
    let purchases: Vec<&Value> = after
        .iter()
        .filter(|e| e["event_name"] == "Purchase")
        .collect();
    assert_eq!(purchases.len(), 1, "one change, one event: {after:#?}");
    assert!(letter_codes(&data).is_empty(), "{:?}", letter_codes(&data));
}
