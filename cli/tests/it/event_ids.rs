//! Events sharing an id, through `serve`: two rules on one posted conversion send
//! two events with the caller's id; a second contact posting the same id gets its
//! events lettered, never silently dropped.

use std::time::Duration;

use chrono::Utc;
use ghl_capi_tests::fixtures::{self, contact};
use ghl_capi_tests::stand_in::MetaStandIn;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::serve::{free_port, letter_codes, start_with};

/// A Purchase for every posted purchase, and a custom HighValuePurchase above 100.
fn mapping() -> String {
    format!(
        r#"version = 1
[defaults]
currency = "USD"
[[pixels]]
name = "main"
dataset_id = "{}"
access_token = {{ env = "TEST_META_TOKEN" }}
[[rules]]
name = "purchase"
trigger = "conversion.posted"
event_name = "Purchase"
value = {{ field = "conversion.value" }}
[[rules]]
name = "high-value"
trigger = "conversion.posted"
event_name = "HighValuePurchase"
value = {{ field = "conversion.value" }}
[[rules.when]]
field = "conversion.value"
greater_than = 100
"#,
        fixtures::DATASET
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_conversions_sharing_an_event_id_are_sent_or_lettered_never_dropped() {
    let ghl = MockServer::start().await;
    let graph = MockServer::start().await;
    for (id, email) in [("c-ann", "ann@example.com"), ("c-bob", "bob@example.com")] {
        Mock::given(method("GET"))
            .and(path(format!("/contacts/{id}")))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"contact": contact(id, email, &[])})),
            )
            .mount(&ghl)
            .await;
    }
    let meta = MetaStandIn::expecting_token("EAAB-local");
    meta.mount(&graph, fixtures::DATASET).await;
    let dir = tempfile::tempdir().expect("dir");
    let mapping_file = dir.path().join("mapping.toml");
    std::fs::write(&mapping_file, mapping()).expect("mapping written");
    let data = dir.path().join("data");
    let urls = (ghl.uri(), graph.uri());
    let server = start_with(&data, &mapping_file, (&urls.0, &urls.1), free_port(), &[]).await;

    let client = reqwest::Client::new();
    for contact in ["c-ann", "c-bob"] {
        let conversion = json!({"locationId": "loc1", "eventType": "purchase", "value": 250.0,
            "currency": "USD", "timestamp": Utc::now().to_rfc3339(), "eventId": "order-1"});
        let answer = client
            .post(format!("{}/contacts/{contact}/conversions", server.url))
            .bearer_auth("ck-local")
            .json(&conversion)
            .send()
            .await
            .expect("answered");
        assert_eq!(answer.status(), 202);
    }
    let mut codes = Vec::new();
    for _ in 0..150 {
        codes = letter_codes(&data);
        if meta.events().len() >= 2 && codes.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut sent: Vec<(String, String)> = meta
        .events()
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (text("event_name"), text("event_id"))
        })
        .collect();
    sent.sort();
    assert_eq!(
        sent,
        [
            ("HighValuePurchase".to_owned(), "order-1".to_owned()),
            ("Purchase".to_owned(), "order-1".to_owned()),
        ],
        "the first contact's two events"
    );
    assert_eq!(
        codes,
        ["event_id_reused", "event_id_reused"],
        "the second contact's two, lettered"
    );
}
