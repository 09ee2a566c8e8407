//! GHL workflows as a trigger source, through `ghl-capi serve` as a real process:
//! the Webhook action's standard payload and a Custom Webhook body (the one
//! `workflow snippet` prints, its merge fields filled in as GHL would) reach a mock
//! Graph API; GHL's retry of a call sends nothing more; a key for another location
//! is refused and queues nothing.

use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use ghl_capi_tests::fixtures::{self, contact, workflow_call};
use ghl_capi_tests::stand_in::{MetaStandIn, ghl_serves};
use serde_json::{Value, json};
use wiremock::MockServer;

use crate::cli::run;
use crate::serve::{free_port, letter_codes, start_with};

const KEYS: &str = r#"[{"id": "studio", "key": "ck-loc1", "locations": ["loc1"]},
    {"id": "other", "key": "ck-loc2", "locations": ["loc2"]}]"#;

/// `ghl-capi workflow snippet --json` with `args`, as one JSON value.
fn snippet(args: &[&str]) -> Value {
    let out = run(&[&["workflow", "snippet", "--json"], args].concat(), "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON line")
}

/// `text` with GHL's merge fields filled in for the contact `contact_id`, as
/// the action would send it.
fn filled(text: &str, contact_id: &str) -> String {
    let mut text = text
        .replace("{{location.id}}", fixtures::LOCATION)
        .replace("{{contact.id}}", contact_id)
        .replace("{{contact.email}}", &format!("{contact_id}@example.com"))
        .replace("{{contact.phone}}", "")
        .replace("{{contact.first_name}}", "Ann")
        .replace("{{contact.last_name}}", "");
    for (field, value) in [
        ("year", "2026"),
        ("month", "12"),
        ("day", "1"),
        ("hour", "9"),
        ("minute", "05"),
        ("second", "7"),
    ] {
        text = text.replace(&format!("{{{{right_now.{field}}}}}"), value);
    }
    // Any merge field left has no value here: GHL writes empty text.
    while let (Some(start), Some(end)) = (text.find("{{"), text.find("}}")) {
        text.replace_range(start..end + 2, "");
    }
    text
}

async fn call(url: &str, headers: &[(&str, &str)], body: &Value) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(format!("{url}/workflows/ghl"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let answer = request.json(body).send().await.expect("answered");
    let status = answer.status().as_u16();
    (status, answer.json().await.expect("a JSON answer"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_calls_reach_meta_through_serve_once_and_only_with_the_locations_key() {
    let ghl = MockServer::start().await;
    let graph = MockServer::start().await;
    ghl_serves(&ghl, &contact("c-ann", "ann@example.com", &[]), "pit-local").await;
    let meta = MetaStandIn::expecting_token("EAAB-local");
    meta.mount(&graph, fixtures::DATASET).await;
    let dir = tempfile::tempdir().expect("dir");
    let mapping = dir.path().join("mapping.toml");
    let text = fixtures::mapping_text_with_token(r#"{ env = "TEST_META_TOKEN" }"#)
        + fixtures::WORKFLOW_RULES;
    std::fs::write(&mapping, text).expect("mapping written");
    let data = dir.path().join("data");
    let keys = [("CONVERSION_API_KEYS".to_owned(), KEYS.to_owned())];
    let server = start_with(
        &data,
        &mapping,
        (&ghl.uri(), &graph.uri()),
        free_port(),
        &keys,
    )
    .await;

    // The Webhook action can only add headers: the key goes in X-Api-Key.
    let standard = workflow_call("standard");
    let (status, answer) = call(&server.url, &[("x-api-key", "ck-loc1")], &standard).await;
    assert_eq!(status, 200, "{answer}");
    let standard_id = answer["eventId"].as_str().expect("id").to_owned();
    let (status, again) = call(&server.url, &[("x-api-key", "ck-loc1")], &standard).await;
    assert_eq!(
        (status, &again["eventId"]),
        (200, &json!(standard_id)),
        "GHL's retry"
    );

    // A key for another location: refused, and nothing is queued.
    let (status, refused) = call(&server.url, &[("x-api-key", "ck-loc2")], &standard).await;
    assert_eq!(status, 403, "{refused}");
    let (status, _) = call(&server.url, &[("authorization", "Bearer nope")], &standard).await;
    assert_eq!(status, 401);

    // The Custom Webhook body the snippet prints, as GHL sends it.
    let mapping_arg = mapping.to_str().expect("path");
    let printed = snippet(&[
        "--rule",
        "booked",
        "--mapping",
        mapping_arg,
        "--url",
        &server.url,
    ]);
    assert_eq!(printed["url"], format!("{}/workflows/ghl", server.url));
    assert_eq!(printed["headers"]["Authorization"], "Bearer <API key>");
    let body: Value = serde_json::from_str(&filled(&printed["body"].to_string(), "c-ann"))
        .expect("the filled body is JSON");
    let (status, answer) = call(&server.url, &[("authorization", "Bearer ck-loc1")], &body).await;
    assert_eq!(status, 200, "{answer} for {body}");
    let custom_id = answer["eventId"].as_str().expect("id").to_owned();
    assert!(custom_id.starts_with("booked-c-ann-2026"), "{custom_id}");
    let (status, _) = call(&server.url, &[("authorization", "Bearer ck-loc1")], &body).await;
    assert_eq!(status, 200, "and its retry");

    let mut events = Vec::new();
    for _ in 0..150 {
        events = meta.events();
        if events.len() >= 2 {
            // A little longer, to catch any event that should not come.
            tokio::time::sleep(Duration::from_millis(800)).await;
            events = meta.events();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut ids: Vec<&str> = events
        .iter()
        .filter_map(|e| e["event_id"].as_str())
        .collect();
    ids.sort_unstable();
    let mut expected = [standard_id.as_str(), custom_id.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected, "each call once: {events:#?}");
    for event in &events {
        assert_eq!(event["event_name"], "Schedule");
        let age = Utc::now().timestamp() - event["event_time"].as_i64().expect("time");
        assert!((0..120).contains(&age), "the call's arrival: {event}");
    }
    let from_payload = events
        .iter()
        .find(|e| e["event_id"] == standard_id.as_str())
        .expect("the standard payload's event");
    assert_eq!(from_payload["custom_data"]["value"], 120.5);
    assert!(
        from_payload["user_data"]["fbc"]
            .as_str()
            .unwrap_or("")
            .ends_with(".IwAR-wf"),
        "the payload's attribution: {from_payload}"
    );
    // Only the snippet's contact was read from GHL: the payload carried its own.
    let reads = ghl.received_requests().await.unwrap_or_default();
    let paths: Vec<&str> = reads.iter().map(|r| r.url.path()).collect();
    assert_eq!(paths, ["/contacts/c-ann"]);
    assert!(letter_codes(&data).is_empty(), "no dead letters");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_call_becomes_a_dry_run_request_with_the_demo_mapping() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .args(["serve", "--dev", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(&data)
        .env("CONVERSION_API_KEYS", KEYS)
        .env("ADMIN_LISTEN", "127.0.0.1:0")
        .env_remove("META_ACCESS_TOKEN")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("serve starts");
    let url = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..100 {
        if reqwest::get(format!("{url}/health")).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "serve did not come up");
    let printed = snippet(&["--rule", "workflow-event", "--location", "loc1"]);
    let mut body: Value =
        serde_json::from_str(&filled(&printed["body"].to_string(), "c-demo")).expect("JSON");
    // What the snippet says the built-in rule also reads.
    let to_add: Vec<&str> = printed["toAdd"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|a| a["key"].as_str())
        .collect();
    assert_eq!(to_add, ["event", "value", "currency"]);
    body["event"] = json!("Schedule");
    body["value"] = json!("49.90");
    body["currency"] = json!("EUR");
    let (status, answer) = call(&url, &[("authorization", "Bearer ck-loc1")], &body).await;
    assert_eq!(status, 200, "{answer}");

    let outbox = data.join("outbox.jsonl");
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = std::fs::read_to_string(&outbox)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        if !lines.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line: Value = serde_json::from_str(&lines[0]).expect("a JSON line");
    let event = &line["request"]["data"][0];
    assert_eq!(event["event_name"], "Schedule");
    assert_eq!(event["event_id"], answer["eventId"]);
    assert_eq!(event["custom_data"]["value"], 49.9);
    assert_eq!(
        event["user_data"]["em"][0],
        ghl_capi::normalize::sha256_hex("c-demo@example.com").as_str(),
        "the contact as the call carried it: no GHL token needed"
    );
}

#[test]
fn mapping_preview_reads_a_workflow_call_as_the_pipeline_does() {
    let dir = tempfile::tempdir().expect("dir");
    let mapping = dir.path().join("mapping.toml");
    std::fs::write(
        &mapping,
        fixtures::mapping_text() + fixtures::WORKFLOW_RULES,
    )
    .expect("mapping");
    let standard = ghl_capi_tests::fixtures::mapping_path()
        .with_file_name("workflows")
        .join("standard.json");
    let out = run(
        &[
            "mapping",
            "preview",
            "--json",
            "--at",
            "2026-11-21T00:00:00Z",
            mapping.to_str().expect("path"),
            standard.to_str().expect("path"),
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let preview: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(preview["webhook"], "workflow call");
    assert_eq!(preview["contactId"], "c-wf");
    let occurrence = &preview["occurrences"][0];
    assert_eq!(occurrence["trigger"], "workflow.fired");
    let event = &occurrence["events"][0];
    assert_eq!(
        (
            event["rule"].as_str(),
            event["event"]["event_name"].as_str()
        ),
        (Some("booked"), Some("Schedule"))
    );
    assert_eq!(event["event"]["custom_data"]["value"], 120.5);
}
