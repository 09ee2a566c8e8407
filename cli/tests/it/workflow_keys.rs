//! A workflow call's key where GHL's plain Webhook action can put it when it offers
//! no header (the URL's end, a Custom Data row), through `serve` as a real process:
//! the calls are taken, and the key reaches nothing `serve` writes or shows: its log
//! lines, its data directory (queues, letters, journal), `trace`, `dlq list`, the
//! status page and its letter pages, `/metrics`.

use std::process::Command;
use std::time::Duration;

use ghl_capi_tests::fixtures;
use serde_json::{Value, json};
use wiremock::MockServer;

use crate::serve::{Server, admin_in, free_port, letter_codes, serve_with_partners, start_saying};

const KEY: &str = "ck-plain-action-0f9e8d7c6b5a4938";

async fn post(url: &str, body: &Value) -> u16 {
    let answer = reqwest::Client::new().post(url).json(body).send().await;
    answer.expect("answered").status().as_u16()
}

/// What `ghl-capi args…` prints, its status checked.
fn printed(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .args(args)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `serve` with the fixture mapping and the workflow rules, the key [`KEY`] for
/// the fixture's location, and the partners at `ghl` and `graph`, logging JSON at
/// `info` into `serve.out` beside its `data` (the folder goes when dropped).
async fn serving(ghl: &MockServer, graph: &MockServer) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("dir");
    let mapping = dir.path().join("mapping.toml");
    let text = fixtures::mapping_text_with_token(r#"{ env = "TEST_META_TOKEN" }"#)
        + fixtures::WORKFLOW_RULES;
    std::fs::write(&mapping, text).expect("mapping written");
    let port = free_port();
    let keys = json!([{"id": "plain", "key": KEY, "locations": [fixtures::LOCATION]}]);
    let mut command = serve_with_partners(&dir.path().join("data"), &mapping, port, (ghl, graph));
    command
        .args(["--log-format", "json"])
        .env("CONVERSION_API_KEYS", keys.to_string())
        .env("RUST_LOG", "info");
    let server = start_saying(command, port, &dir.path().join("serve.out")).await;
    (dir, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_in_the_url_or_the_custom_data_reaches_nothing_serve_writes_or_shows() {
    // GHL has none of the contacts: each call becomes a letter that keeps its body.
    let ghl = MockServer::start().await;
    let graph = MockServer::start().await;
    let (dir, server) = serving(&ghl, &graph).await;
    let (data, said) = (dir.path().join("data"), dir.path().join("serve.out"));

    let call = |contact: &str, extra: Value| {
        let mut body = json!({"locationId": fixtures::LOCATION, "contactId": contact,
            "workflow": "Booked call", "eventId": format!("wf-{contact}")});
        body.as_object_mut()
            .expect("object")
            .extend(extra.as_object().cloned().unwrap_or_default());
        body
    };
    let in_url = format!("{}/workflows/ghl/{KEY}", server.url);
    assert_eq!(post(&in_url, &call("c-url", json!({}))).await, 200);
    let in_data = call(
        "c-data",
        json!({"customData": {"apiKey": KEY, "plan": "gold"}}),
    );
    let plain = format!("{}/workflows/ghl", server.url);
    assert_eq!(post(&plain, &in_data).await, 200);
    let guessed = format!("{}/workflows/ghl/{KEY}-guess", server.url);
    assert_eq!(post(&guessed, &call("c-url", json!({}))).await, 401);
    for _ in 0..100 {
        if letter_codes(&data).len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(letter_codes(&data), ["contact_not_found"; 2]);

    let mut seen: Vec<(String, String)> = Vec::new();
    let data_dir = data.to_str().expect("path");
    for call in ["wf-c-url", "wf-c-data"] {
        let trace = printed(&["trace", "--webhook", call, "--json", "--data-dir", data_dir]);
        assert!(trace.contains("contact_not_found"), "{trace}");
        seen.push((format!("trace of {call}"), trace));
    }
    let letters = printed(&[
        "dlq",
        "list",
        "--json",
        "--show-bodies",
        "--data-dir",
        data_dir,
    ]);
    assert!(
        letters.contains("gold"),
        "the letter keeps the call: {letters}"
    );
    seen.push(("dlq list".into(), letters));

    let admin = admin_in(&said);
    let status = reqwest::get(format!("{admin}/status")).await.expect("page");
    let page = status.text().await.expect("text");
    let letter_pages: Vec<String> = page
        .split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .filter(|href| href.starts_with("/status/dead/"))
        .map(str::to_owned)
        .collect();
    assert_eq!(letter_pages.len(), 2, "{page}");
    for href in letter_pages {
        let letter = reqwest::get(format!("{admin}{href}")).await.expect("page");
        seen.push((href, letter.text().await.expect("text")));
    }
    seen.push(("status page".into(), page));
    let metrics = reqwest::get(format!("{admin}/metrics"))
        .await
        .expect("metrics");
    seen.push(("/metrics".into(), metrics.text().await.expect("text")));
    drop(server);

    let log = std::fs::read_to_string(&said).expect("what serve said");
    assert!(
        log.contains("/workflows/ghl/{key}"),
        "the request line shows the route, not the key: {log}"
    );
    seen.push(("serve's output".into(), log));
    for entry in std::fs::read_dir(&data).expect("data dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("readable");
        seen.push((
            path.display().to_string(),
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    for (what, text) in &seen {
        assert!(!text.contains(KEY), "the key is in {what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_webhook_action_with_no_header_reaches_meta_through_serve() {
    use ghl_capi_tests::stand_in::MetaStandIn;
    let ghl = MockServer::start().await;
    let graph = MockServer::start().await;
    let meta = MetaStandIn::expecting_token("EAAB-local");
    meta.mount(&graph, fixtures::DATASET).await;
    let (_dir, server) = serving(&ghl, &graph).await;
    // GHL's standard payload, as the plain action sends it: no header of ours.
    let standard = fixtures::workflow_call("standard");
    let url = format!("{}/workflows/ghl/{KEY}", server.url);
    assert_eq!(post(&url, &standard).await, 200);
    let mut events = Vec::new();
    for _ in 0..100 {
        events = meta.events();
        if !events.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["event_name"], "Schedule");
    assert!(
        ghl.received_requests().await.unwrap_or_default().is_empty(),
        "the payload carried its contact and attribution"
    );
}
