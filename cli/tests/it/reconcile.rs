//! `ghl-capi reconcile --seed` with `serve`: once a location is seeded, the first
//! tag webhook of a contact fires its tag rule (without, it only records the
//! contact's tags); a contact the pipeline saw before keeps what its webhooks said.

use std::time::Duration;

use ghl_capi_tests::fixtures::{self, contact, webhook};
use ghl_capi_tests::stand_in::MetaStandIn;
use serde_json::{Value, json};
use wiremock::MockServer;

use crate::audiences::GhlContacts;
use crate::serve::{free_port, start_with, try_deliver};

fn reconcile(data: &std::path::Path, ghl: &str, extra: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .args(["reconcile", "--location", fixtures::LOCATION])
        .args(extra)
        .arg("--data-dir")
        .arg(data)
        .env("GHL_API_BASE_URL", ghl)
        .env("GHL_TOKEN_loc1", "pit-local")
        .output()
        .expect("reconcile runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_seeding_the_first_tag_webhook_fires_its_rule() {
    let listed: Vec<Value> = (0..230)
        .map(|i| json!({"id": format!("c{i}"), "locationId": fixtures::LOCATION, "tags": ["lead"]}))
        .collect();
    let (ghl, contacts) = GhlContacts::serve(listed).await;
    let graph = MockServer::start().await;
    let meta = MetaStandIn::expecting_token("EAAB-local");
    meta.mount(&graph, fixtures::DATASET).await;
    let dir = tempfile::tempdir().expect("dir");
    let mapping = dir.path().join("mapping.toml");
    std::fs::write(
        &mapping,
        fixtures::mapping_text_with_token(r#"{ env = "TEST_META_TOKEN" }"#),
    )
    .expect("mapping written");
    let data = dir.path().join("data");
    let server = start_with(
        &data,
        &mapping,
        (&ghl.uri(), &graph.uri()),
        free_port(),
        &[],
    )
    .await;
    let http = reqwest::Client::new();

    // c0 is seen before seeding: its tags come from its webhook, not the listing.
    let seen = webhook(
        "ContactTagUpdate",
        "w0",
        contact("c0", "c0@example.com", &["seen"]),
    );
    assert_eq!(try_deliver(&http, &server.url, seen).await, Some(200));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (ok, usage) = reconcile(&data, &ghl.uri(), &[]);
    assert!(
        !ok && usage.contains("--seed"),
        "only --seed exists: {usage}"
    );
    let (ok, seeded) = reconcile(&data, &ghl.uri(), &["--seed"]);
    assert!(ok, "{seeded}");
    assert!(
        seeded.contains(
            "seeded: 230 contacts listed; 229 baselines recorded, 1 already known from webhooks"
        ),
        "{seeded}"
    );
    let pages: Vec<u64> = contacts
        .searches
        .lock()
        .expect("lock")
        .iter()
        .filter_map(|s| s["page"].as_u64())
        .collect();
    assert_eq!(pages, [1, 2, 3]);
    assert!(meta.events().is_empty(), "seeding sends nothing");

    // c5's first webhook adds `vip` to the seeded `lead`: the tag rule fires.
    let tagged = webhook(
        "ContactTagUpdate",
        "w5",
        contact("c5", "c5@example.com", &["lead", "vip"]),
    );
    assert_eq!(try_deliver(&http, &server.url, tagged).await, Some(200));
    let mut events = Vec::new();
    for _ in 0..100 {
        events = meta.events();
        if !events.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let names: Vec<&str> = events
        .iter()
        .filter_map(|e| e["event_name"].as_str())
        .collect();
    assert_eq!(names, ["CompleteRegistration"], "{events:?}");
    assert_eq!(events[0]["custom_data"]["content_name"], "vip");

    let (ok, again) = reconcile(&data, &ghl.uri(), &["--seed"]);
    assert!(ok && again.contains("seeded before, at "), "{again}");
    assert!(
        again.contains("0 baselines recorded, 230 already known"),
        "{again}"
    );
    drop(server);
}
