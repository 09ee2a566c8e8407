//! No one but the deployment's own GHL app and locations gets an event in, through
//! `serve`: with no app configured a signed delivery is refused, saying what to
//! set; another app's (or one naming none) is acknowledged and dropped; a location
//! with no token reaches no pixel kept for all locations.

use std::process::Stdio;

use ghl_capi_tests::fixtures::{self, contact, webhook};
use serde_json::{Value, json};
use wiremock::MockServer;

use crate::serve::{Server, ann_partners, free_port, mapping_text, settled, up};

/// `serve` trusting the development key as if it were GHL's (not `--dev`, which
/// also trusts the development app), with `GHL_APP_ID` as `app` says.
async fn start(dir: &std::path::Path, (ghl, graph): (&str, &str), app: Option<&str>) -> Server {
    let mapping = dir.join("mapping.toml");
    std::fs::write(&mapping, mapping_text()).expect("mapping written");
    let port = free_port();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ghl-capi"));
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--mapping")
        .arg(&mapping)
        .env(
            "GHL_WEBHOOK_ED25519_PUBLIC_KEY",
            ghl_capi_local::dev::public_pem().expect("pem"),
        )
        .env("RECONCILE_EVERY", "0")
        .env("ADMIN_LISTEN", "127.0.0.1:0")
        .env("GRAPH_API_BASE_URL", graph)
        .env("GHL_API_BASE_URL", ghl)
        .env("GHL_TOKEN_loc1", "pit-local")
        .env("TEST_META_TOKEN", "EAAB-local")
        .env_remove("GHL_APP_ID")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(app) = app {
        command.env("GHL_APP_ID", app);
    }
    up(Server {
        child: command.spawn().expect("serve starts"),
        url: format!("http://127.0.0.1:{port}"),
    })
    .await
}

async fn deliver(server: &Server, body: &Value) -> (u16, Value) {
    let body = serde_json::to_vec(body).expect("json");
    let answer = reqwest::Client::new()
        .post(format!("{}/webhooks/ghl", server.url))
        .header("x-ghl-signature", ghl_capi_local::dev::sign(&body))
        .body(body)
        .send()
        .await
        .expect("answered");
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or_default())
}

/// A new contact's webhook of `location`, naming `app` (or no app).
fn created(id: &str, location: &str, app: Option<&str>) -> Value {
    let mut body: Value = serde_json::from_slice(&webhook(
        "ContactCreate",
        id,
        contact("c-ann", "ann@example.com", &[]),
    ))
    .expect("json");
    body["locationId"] = location.into();
    match app {
        Some(app) => body["appId"] = app.into(),
        None => drop(body.as_object_mut().and_then(|b| b.remove("appId"))),
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_app_configured_a_signed_delivery_is_refused_saying_what_to_set() {
    let graph = MockServer::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let server = start(dir.path(), ("http://127.0.0.1:9", &graph.uri()), None).await;
    let (status, answer) = deliver(&server, &created("wh-1", "loc1", Some("any-app"))).await;
    assert_eq!(status, 403);
    assert_eq!(answer["error"], "no_marketplace_app");
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .contains("GHL_APP_ID"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_our_apps_deliveries_of_our_locations_reach_a_pixel_kept_for_all() {
    let (ghl, graph, meta) = ann_partners().await;
    let dir = tempfile::tempdir().expect("dir");
    let urls = (ghl.uri(), graph.uri());
    let server = start(dir.path(), (&urls.0, &urls.1), Some(fixtures::APP_ID)).await;
    for (body, status) in [
        (created("wh-other", "loc1", Some("their-app")), "ignored"),
        (created("wh-none", "loc1", None), "ignored"),
        (
            created("wh-stranger", "loc-of-a-stranger", Some(fixtures::APP_ID)),
            "accepted",
        ),
        // Ours, of a location with a token: the one that reaches Meta.
        (
            created("wh-ours", "loc1", Some(fixtures::APP_ID)),
            "accepted",
        ),
    ] {
        let (code, answer) = deliver(&server, &body).await;
        assert_eq!(
            (code, answer["status"].as_str()),
            (200, Some(status)),
            "{body}"
        );
    }
    settled(&dir.path().join("data"), &meta, (1, 0)).await;
    let names: Vec<Value> = meta
        .events()
        .iter()
        .map(|e| e["event_name"].clone())
        .collect();
    assert_eq!(names, [json!("Lead")], "ours alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_its_owners_alone_and_dev_mode_stays_on_loopback() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("dir");
    let mapping = dir.path().join("mapping.toml");
    std::fs::write(&mapping, mapping_text()).expect("mapping written");
    let data = dir.path().join("data");
    let server = crate::serve::start_with(
        &data,
        &mapping,
        ("http://127.0.0.1:9", "http://127.0.0.1:9"),
        free_port(),
        &[],
    )
    .await;
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path).expect("there").permissions().mode() & 0o777
    };
    assert_eq!(mode(&data), 0o700);
    for file in ["store.db", "store.db-wal", "outbox.jsonl", "store.db.lock"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    drop(server);

    // A published key, trusted off loopback: refused before anything starts.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .args(["serve", "--dev", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(&data)
        .arg("--mapping")
        .arg(&mapping)
        .env("ADMIN_LISTEN", "127.0.0.1:0")
        .env("RECONCILE_EVERY", "0")
        .output()
        .expect("runs");
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("--dev") && said.contains("loopback"),
        "{said}"
    );
}
