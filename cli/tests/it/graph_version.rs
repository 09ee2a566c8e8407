//! A Graph API version Meta flags, as `serve` meets it: the event is delivered,
//! and the version's trouble is said at once (a log line with `alert=graph_version`)
//! and counted (`GraphVersionWarnings` on `/metrics`), before any sunset bites.

use std::time::Duration;

use ghl_capi_tests::fixtures::{self, contact, webhook};
use ghl_capi_tests::stand_in::{MetaStandIn, VersionFlag};
use wiremock::MockServer;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::serve::{
    admin_in, free_port, mapping_text, serve_with_partners, start_saying, try_deliver,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flagged_graph_version_is_said_and_counted_and_costs_no_event() {
    let ghl = MockServer::start().await;
    let graph = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/contacts/c-ann"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            serde_json::json!({"contact": contact("c-ann", "ann@example.com", &[])}),
        ))
        .mount(&ghl)
        .await;
    let meta = MetaStandIn::expecting_token("EAAB-local")
        .at_version("v24.0")
        .flagging(VersionFlag::AutoUpgraded(
            "The call has been auto-upgraded to v25.0 as v24.0 is deprecated.".into(),
        ));
    meta.mount(&graph, fixtures::DATASET).await;
    let dir = tempfile::tempdir().expect("dir");
    let mapping = dir.path().join("mapping.toml");
    std::fs::write(&mapping, mapping_text()).expect("mapping written");
    let said = dir.path().join("serve.out");
    let port = free_port();
    let mut command = serve_with_partners(&dir.path().join("data"), &mapping, port, (&ghl, &graph));
    command
        .args(["--log-format", "json"])
        .env("GRAPH_API_VERSION", "v24.0")
        .env("RUST_LOG", "info");
    let server = start_saying(command, port, &said).await;
    let created = webhook(
        "ContactCreate",
        "wh-v24",
        contact("c-ann", "ann@example.com", &[]),
    );
    let delivered = try_deliver(&reqwest::Client::new(), &server.url, created).await;
    assert_eq!(delivered, Some(200));
    for _ in 0..100 {
        if !meta.events().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(meta.events().len(), 1, "delivered all the same");

    // The stand-in holds the event once it is asked; serve says the flag once it
    // has read the answer, a moment later.
    let alerted = |log: &str| {
        log.lines().any(|l| {
            l.contains("\"alert\":\"graph_version\"") && l.contains("auto-upgraded to v25.0")
        })
    };
    let mut log = String::new();
    for _ in 0..100 {
        log = std::fs::read_to_string(&said).expect("what serve said");
        if alerted(&log) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(alerted(&log), "{log}");
    let admin = format!("{}/metrics", admin_in(&said));
    let metrics = reqwest::get(admin).await.expect("metrics");
    let text = metrics.text().await.expect("text");
    assert!(
        text.lines()
            .any(|l| l.starts_with("GraphVersionWarnings") && l.ends_with(" 1")),
        "{text}"
    );
    drop(server);
}
