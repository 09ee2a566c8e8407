//! The intake's limits through `serve`: the largest webhook it takes is delivered
//! to Meta or lettered, never stuck, and one larger is answered `413`; a delivery
//! past the replay window is kept as a letter, and sent once redriven.

use std::time::Duration;

use ghl_capi::jobs::MAX_JOB_BYTES;
use ghl_capi_tests::fixtures::{self, contact, padded_webhook};

use crate::serve::{ann_partners, letter_codes, mapping_text, serving, settled, try_deliver};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_accepted_webhook_is_delivered_or_lettered_and_a_larger_one_is_413() {
    let (ghl, graph, meta) = ann_partners().await;
    let (_dir, data, server) = serving(&mapping_text(), (&ghl, &graph)).await;
    let client = reqwest::Client::new();
    for (who, job_bytes, status) in [
        ("c-ann", MAX_JOB_BYTES - 100, 200),
        ("c-zoe", MAX_JOB_BYTES - 100, 200),
        ("c-ann", MAX_JOB_BYTES + 100, 413),
    ] {
        let id = format!("wh-{who}-{job_bytes}");
        let fields = contact(who, "someone@example.com", &[]);
        let body = padded_webhook("ContactCreate", &id, fields, job_bytes);
        assert_eq!(try_deliver(&client, &server.url, body).await, Some(status));
    }
    let codes = settled(&data, &meta, (1, 1)).await;
    assert_eq!(meta.events().len(), 1, "Ann's Lead");
    assert_eq!(
        codes,
        ["contact_not_found"],
        "Zoe's, whom GHL does not know"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_past_the_replay_window_is_kept_as_a_letter_and_sent_once_redriven() {
    let (ghl, graph, meta) = ann_partners().await;
    let (_dir, data, server) = serving(&mapping_text(), (&ghl, &graph)).await;
    // GHL's webhook log resends it three hours after GHL first sent it.
    let fields = contact("c-ann", "ann@example.com", &[]);
    let mut late: serde_json::Value =
        serde_json::from_slice(&fixtures::webhook("ContactCreate", "wh-late", fields))
            .expect("json");
    late["timestamp"] = (chrono::Utc::now() - chrono::Duration::hours(3))
        .to_rfc3339()
        .into();
    let body = serde_json::to_vec(&late).expect("json");
    let client = reqwest::Client::new();
    assert_eq!(
        try_deliver(&client, &server.url, body).await,
        Some(200),
        "kept"
    );
    assert_eq!(settled(&data, &meta, (0, 1)).await, ["stale_delivery"]);
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
