//! After a partner's outage, `ghl-capi serve` (a real process) drains what it
//! held promptly: a 10-minute Meta outage and a 3-minute GHL outage, scaled 1:10
//! (the hold's first wait 200 ms, its longest 90 s, probes at most 1.5 s apart), are
//! drained within 6 s of the partner's return: a minute, unscaled.

use std::time::{Duration, Instant};

use ghl_capi_tests::fixtures::{self, contact, webhook};
use ghl_capi_tests::soak::Accepted;
use ghl_capi_tests::stand_in::{GhlStandIn, MetaStandIn};
use wiremock::MockServer;

use crate::serve::{Server, free_port, start_with, try_deliver};

/// A minute, scaled 1:10.
const MINUTE: Duration = Duration::from_secs(6);

/// Sends a new contact's webhook every 700 ms for `during`, then waits until Meta
/// has a Lead for each webhook sent so far (`sent` before): how many it sent.
async fn run(
    server: &Server,
    meta: &MetaStandIn,
    accepted: &mut Accepted,
    (first, sent): (usize, usize),
    during: Duration,
) -> usize {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut n = first;
    while started.elapsed() < during {
        let id = format!("c{n}");
        let body = webhook(
            "ContactCreate",
            &format!("wh-{n}"),
            contact(&id, &format!("{id}@example.com"), &[]),
        );
        accepted.now(&body);
        assert_eq!(try_deliver(&http, &server.url, body).await, Some(200));
        n += 1;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let leads = || {
        meta.events()
            .iter()
            .filter(|e| e["event_name"] == "Lead")
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    while leads() < sent + n - first {
        assert!(
            Instant::now() < deadline,
            "{} of {} leads",
            leads(),
            sent + n - first
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    n - first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_of_meta_or_ghl_serve_brings_the_held_events_within_a_minute() {
    let (ghl_server, graph) = (MockServer::start().await, MockServer::start().await);
    let ghl = GhlStandIn::new("pit-local");
    ghl.mount(&ghl_server).await;
    let meta = MetaStandIn::expecting_token("EAAB-local");
    meta.mount(&graph, fixtures::DATASET).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("mapping.toml");
    let text = fixtures::mapping_text_with_token(r#"{ env = "TEST_META_TOKEN" }"#);
    std::fs::write(&file, text).expect("mapping written");
    let scaled = [
        ("HOLD_BASE_MS".to_owned(), "200".to_owned()),
        ("HOLD_CAP_SECONDS".to_owned(), "90".to_owned()),
        ("HOLD_PROBE_CAP_MS".to_owned(), "1500".to_owned()),
    ];
    let data = dir.path().join("data");
    let urls = (ghl_server.uri(), graph.uri());
    let server = start_with(&data, &file, (&urls.0, &urls.1), free_port(), &scaled).await;
    let mut accepted = Accepted::default();

    // Meta down for 10 minutes (60 s scaled), webhooks coming in all along.
    meta.down_for(Duration::from_secs(60));
    let sent = run(
        &server,
        &meta,
        &mut accepted,
        (0, 0),
        Duration::from_secs(62),
    )
    .await;
    let back = meta.back_at().expect("Meta was down");
    let meta_drain = accepted
        .drain(back, &meta.events_at())
        .expect("events were held");
    eprintln!("serve: drain after Meta's 10-minute outage (1:10): {meta_drain:?}");

    // GHL down for 3 minutes (18 s scaled).
    ghl.down_for(Duration::from_secs(18));
    run(
        &server,
        &meta,
        &mut accepted,
        (1000, sent),
        Duration::from_secs(20),
    )
    .await;
    let back = ghl.back_at().expect("GHL was down");
    let ghl_drain = accepted
        .drain(back, &meta.events_at())
        .expect("events were held");
    eprintln!("serve: drain after GHL's 3-minute outage (1:10): {ghl_drain:?}");

    assert!(
        meta_drain <= MINUTE,
        "Meta's outage drained in {meta_drain:?}"
    );
    assert!(ghl_drain <= MINUTE, "GHL's outage drained in {ghl_drain:?}");
    drop(server);
}
