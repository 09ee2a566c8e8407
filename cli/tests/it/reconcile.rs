//! `ghl-capi reconcile` with `serve`: once a location is seeded, the first tag
//! webhook of a contact fires its tag rule (without, it only records the
//! contact's tags); a contact the pipeline saw before keeps what its webhooks
//! said. `serve` reconciles on its own schedule, sending the changes no webhook
//! delivered, once; `reconcile` runs the same once, on demand.

use std::time::Duration;

use chrono::Utc;
use ghl_capi_tests::contacts_stand_in::ContactsStandIn;
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

/// Meta taking the fixture pixel's events, and a directory with the fixture
/// mapping (`mapping.toml`) beside room for serve's data.
async fn meta_and_mapping() -> (MockServer, MetaStandIn, tempfile::TempDir) {
    let graph = MockServer::start().await;
    let meta = MetaStandIn::expecting_token("EAAB-local");
    meta.mount(&graph, fixtures::DATASET).await;
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("mapping.toml"),
        fixtures::mapping_text_with_token(r#"{ env = "TEST_META_TOKEN" }"#),
    )
    .expect("mapping written");
    (graph, meta, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_seeding_the_first_tag_webhook_fires_its_rule() {
    let listed: Vec<Value> = (0..230)
        .map(|i| json!({"id": format!("c{i}"), "locationId": fixtures::LOCATION, "tags": ["lead"]}))
        .collect();
    let (ghl, contacts) = GhlContacts::serve(listed).await;
    let (graph, meta, dir) = meta_and_mapping().await;
    let (mapping, data) = (dir.path().join("mapping.toml"), dir.path().join("data"));
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

/// Meta's events once `n` have come (or after five seconds).
async fn events_when(meta: &MetaStandIn, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        if meta.events().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    meta.events()
}

/// Each event as `name:tag` (the tag rule's `content_name`), sorted.
fn named(events: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = events
        .iter()
        .map(|e| {
            let name = e["event_name"].as_str().unwrap_or_default();
            match e["custom_data"]["content_name"].as_str() {
                Some(tag) => format!("{name}:{tag}"),
                None => name.to_owned(),
            }
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reconciles_what_no_webhook_delivered_once() {
    let ghl = ContactsStandIn::new(fixtures::LOCATION);
    let long_ago = Utc::now() - chrono::Duration::days(30);
    for i in 0..150 {
        ghl.create(&format!("c{i}"), &["lead"], long_ago);
    }
    let ghl_server = MockServer::start().await;
    ghl.mount(&ghl_server).await;
    let (graph, meta, dir) = meta_and_mapping().await;
    let (mapping, data) = (dir.path().join("mapping.toml"), dir.path().join("data"));
    let every = [("RECONCILE_EVERY".to_owned(), "1s".to_owned())];
    let server = start_with(
        &data,
        &mapping,
        (&ghl_server.uri(), &graph.uri()),
        free_port(),
        &every,
    )
    .await;

    // The first run takes the baseline: two pages, nothing sent.
    for _ in 0..100 {
        if ghl.searches().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(meta.events().is_empty(), "a baseline sends nothing");

    // c1's tag comes by webhook; c2's and a new contact's never do.
    let now = Utc::now();
    ghl.retag("c1", &["lead", "vip"], now);
    let http = reqwest::Client::new();
    let tagged = webhook("ContactTagUpdate", "w1", ghl.contact("c1"));
    assert_eq!(try_deliver(&http, &server.url, tagged).await, Some(200));
    ghl.retag("c2", &["lead", "vip"], now);
    ghl.create("new", &["gold"], now);

    let events = events_when(&meta, 4).await;
    assert_eq!(
        named(&events),
        [
            "CompleteRegistration:gold",
            "CompleteRegistration:vip",
            "CompleteRegistration:vip",
            "Lead"
        ],
        "{events:?}"
    );
    // More runs find nothing more.
    let searches = ghl.searches().len();
    for _ in 0..100 {
        if ghl.searches().len() >= searches + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(meta.events().len(), 4, "each change once");
    drop(server);

    let (ok, text) = reconcile(&data, &ghl_server.uri(), &[]);
    assert!(ok, "{text}");
    assert!(
        text.contains(
            "; 0 with changes no webhook delivered, queued for the pipeline; 0 never seen"
        ),
        "{text}"
    );

    // verify shows the location's baseline and its last reconciliation.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .args(["verify", "--location", fixtures::LOCATION, "--mapping"])
        .arg(&mapping)
        .arg("--data-dir")
        .arg(&data)
        .env("GHL_API_BASE_URL", ghl_server.uri())
        .env("GRAPH_API_BASE_URL", graph.uri())
        .env("GHL_TOKEN_loc1", "pit-local")
        .env("TEST_META_TOKEN", "EAAB-local")
        .output()
        .expect("verify runs");
    let table = String::from_utf8_lossy(&out.stdout);
    let recon = table
        .lines()
        .find(|l| l.starts_with("recon"))
        .unwrap_or_else(|| panic!("no recon row in\n{table}"));
    assert!(
        recon.contains(" yes ") && recon.contains("(150 contacts); reconciled at"),
        "{recon}"
    );
    assert!(recon.contains("0 changes no webhook delivered"), "{recon}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_mirrors_an_audience_on_its_schedule_in_one_session() {
    use ghl_capi_tests::audience_stand_in::AudienceStandIn;
    use ghl_capi_tests::fixtures::VIP_AUDIENCE;

    let ghl = ContactsStandIn::new(fixtures::LOCATION);
    let long_ago = Utc::now() - chrono::Duration::days(30);
    for i in 0..40 {
        let tags: &[&str] = if i % 4 == 0 { &["vip"] } else { &["lead"] };
        ghl.create(&format!("c{i}"), tags, long_ago);
    }
    let ghl_server = MockServer::start().await;
    ghl.mount(&ghl_server).await;
    let graph = MockServer::start().await;
    let meta = AudienceStandIn::expecting_token("EAAB-ads");
    meta.mount(&graph, VIP_AUDIENCE).await;
    let dir = tempfile::tempdir().expect("dir");
    let mapping = dir.path().join("mapping.toml");
    let text = fixtures::mapping_text_with_token(r#"{ env = "TEST_META_TOKEN" }"#)
        + &format!(
            "\n[[audiences]]\nname = \"vips\"\naudience_id = \"{VIP_AUDIENCE}\"\n\
             access_token = {{ env = \"TEST_ADS_TOKEN\" }}\ntags = [\"vip\"]\nmirror_every = \"1h\"\n"
        );
    std::fs::write(&mapping, text).expect("mapping written");
    let env = [
        ("RECONCILE_EVERY".to_owned(), "1s".to_owned()),
        ("TEST_ADS_TOKEN".to_owned(), "EAAB-ads".to_owned()),
    ];
    let data = dir.path().join("data");
    let server = start_with(
        &data,
        &mapping,
        (&ghl_server.uri(), &graph.uri()),
        free_port(),
        &env,
    )
    .await;
    for _ in 0..100 {
        if meta.sessions().first().is_some_and(|s| s.2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(meta.members(VIP_AUDIENCE).len(), 10);
    // Several reconciliations later, still one session: not due for an hour.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(meta.sessions().len(), 1, "{:?}", meta.sessions());
    assert_eq!(meta.breaches(), Vec::<String>::new());
    drop(server);
}
