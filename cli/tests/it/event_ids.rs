//! Events sharing an id, through `serve`: two rules on one posted conversion send
//! two events with the caller's id; a second contact posting the same id gets its
//! events lettered, never silently dropped.

use chrono::Utc;
use ghl_capi_tests::fixtures::{self, contact};
use ghl_capi_tests::stand_in::ghl_serves;
use serde_json::json;

use crate::serve::{ann_partners, post_conversion, serving, settled};

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
    let (ghl, graph, meta) = ann_partners().await;
    ghl_serves(&ghl, &contact("c-bob", "bob@example.com", &[]), "pit-local").await;
    let (_dir, data, server) = serving(&mapping(), (&ghl, &graph)).await;
    for contact in ["c-ann", "c-bob"] {
        let conversion = json!({"locationId": "loc1", "eventType": "purchase", "value": 250.0,
            "currency": "USD", "timestamp": Utc::now().to_rfc3339(), "eventId": "order-1"});
        assert_eq!(post_conversion(&server, contact, &conversion).await, 202);
    }
    let codes = settled(&data, &meta, (2, 2)).await;
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
