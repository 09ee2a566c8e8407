//! The largest webhook the intake takes, through `serve`: delivered to Meta, or
//! lettered whole, never stuck; one larger is answered `413`.

use std::time::Duration;

use ghl_capi::jobs::MAX_JOB_BYTES;
use ghl_capi_tests::fixtures::{self, contact, padded_webhook};
use ghl_capi_tests::stand_in::MetaStandIn;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::serve::{free_port, letter_codes, mapping_text, start_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_accepted_webhook_is_delivered_or_lettered_and_a_larger_one_is_413() {
    let ghl = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/contacts/c-ann"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"contact": contact("c-ann", "ann@example.com", &[])})),
        )
        .mount(&ghl)
        .await;
    let graph = MockServer::start().await;
    let meta = MetaStandIn::expecting_token("EAAB-local");
    meta.mount(&graph, fixtures::DATASET).await;
    let dir = tempfile::tempdir().expect("dir");
    let mapping = dir.path().join("mapping.toml");
    std::fs::write(&mapping, mapping_text()).expect("mapping written");
    let data = dir.path().join("data");
    let urls = (ghl.uri(), graph.uri());
    let server = start_with(&data, &mapping, (&urls.0, &urls.1), free_port(), &[]).await;
    let client = reqwest::Client::new();
    let deliver = |body: Vec<u8>| {
        let request = client
            .post(format!("{}/webhooks/ghl", server.url))
            .header("x-ghl-signature", ghl_capi_local::dev::sign(&body))
            .body(body);
        async move {
            let answer = request.send().await.expect("answered");
            let status = answer.status().as_u16();
            (
                status,
                answer.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };
    for who in ["c-ann", "c-zoe"] {
        let body = padded_webhook(
            "ContactCreate",
            &format!("wh-{who}"),
            contact(who, "someone@example.com", &[]),
            MAX_JOB_BYTES - 100,
        );
        assert_eq!(deliver(body).await.0, 200);
    }
    let larger = padded_webhook(
        "ContactCreate",
        "wh-huge",
        contact("c-ann", "ann@example.com", &[]),
        MAX_JOB_BYTES + 100,
    );
    let (status, answer) = deliver(larger).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (413, Some("too_large_to_queue"))
    );
    let mut codes = Vec::new();
    for _ in 0..100 {
        codes = letter_codes(&data);
        if !meta.events().is_empty() && !codes.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(meta.events().len(), 1, "Ann's Lead");
    assert_eq!(
        codes,
        ["contact_not_found"],
        "Zoe's, whom GHL does not know"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_past_the_replay_window_is_kept_as_a_letter_and_sent_once_redriven() {
    let ghl = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/contacts/c-ann"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"contact": contact("c-ann", "ann@example.com", &[])})),
        )
        .mount(&ghl)
        .await;
    let graph = MockServer::start().await;
    let meta = MetaStandIn::expecting_token("EAAB-local");
    meta.mount(&graph, fixtures::DATASET).await;
    let dir = tempfile::tempdir().expect("dir");
    let mapping = dir.path().join("mapping.toml");
    std::fs::write(&mapping, mapping_text()).expect("mapping written");
    let data = dir.path().join("data");
    let urls = (ghl.uri(), graph.uri());
    let server = start_with(&data, &mapping, (&urls.0, &urls.1), free_port(), &[]).await;
    // GHL's webhook log resends it three hours after GHL first sent it.
    let mut late: serde_json::Value = serde_json::from_slice(&fixtures::webhook(
        "ContactCreate",
        "wh-late",
        contact("c-ann", "ann@example.com", &[]),
    ))
    .expect("json");
    late["timestamp"] = (chrono::Utc::now() - chrono::Duration::hours(3))
        .to_rfc3339()
        .into();
    let body = serde_json::to_vec(&late).expect("json");
    let answer = reqwest::Client::new()
        .post(format!("{}/webhooks/ghl", server.url))
        .header("x-ghl-signature", ghl_capi_local::dev::sign(&body))
        .body(body)
        .send()
        .await
        .expect("answered");
    assert_eq!(answer.status(), 200, "kept, not refused");
    let mut codes = Vec::new();
    for _ in 0..100 {
        codes = letter_codes(&data);
        if !codes.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(codes, ["stale_delivery"]);
    assert!(meta.events().is_empty(), "never acted on by itself");
    let redriven = std::process::Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .args(["dlq", "redrive", "--data-dir"])
        .arg(&data)
        .output()
        .expect("dlq runs");
    assert!(redriven.status.success());
    for _ in 0..100 {
        if !meta.events().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = meta.events();
    let names: Vec<&str> = events
        .iter()
        .filter_map(|e| e["event_name"].as_str())
        .collect();
    assert_eq!(names, ["Lead"], "sent once redriven");
    assert!(letter_codes(&data).is_empty());
}
