//! The operator's view of a running `serve`, as the operator meets it: the status
//! page in a real headless Chromium (its screenshot kept in
//! `target/artefacts/status-page.png`), `/metrics` as Prometheus scrapes it, a
//! duplicate webhook's answer, and `trace` of the contact while `serve` runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use ghl_capi_tests::fixtures::{contact, webhook};
use serde_json::{Value, json};

use crate::serve::{
    ann_partners, deliver_once_up, free_port, mapping_text, serve_command, serve_with_partners,
};

/// Debian's Chromium (`scripts/test.sh` installs it), or `CHROMIUM`.
fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "no Chromium at {}: run the tests with scripts/test.sh, which installs it (apt-get install chromium)",
        path.display()
    );
    path
}

/// Chromium headless on `url`, with `what` (`--dump-dom`, `--screenshot=…`);
/// flags that keep it off the network it would otherwise call.
fn browse(profile: &Path, what: &str, url: &str) -> String {
    let output = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1000,2600",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(what)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn trace(data: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .arg("trace")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("trace runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_the_status_page_the_metrics_and_a_contacts_trace() {
    let (ghl, graph, meta) = ann_partners().await;
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let mapping = dir.path().join("mapping.toml");
    std::fs::write(&mapping, mapping_text()).expect("mapping written");
    let (port, admin_port) = (free_port(), free_port());
    let mut child = serve_with_partners(&data, &mapping, port, (&ghl, &graph))
        .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let url = format!("http://127.0.0.1:{port}");
    let admin = format!("http://127.0.0.1:{admin_port}");
    let client = reqwest::Client::new();
    let created = webhook(
        "ContactCreate",
        "wh-status-1",
        contact("c-ann", "ann@example.com", &[]),
    );
    let answered = deliver_once_up(&client, &url, created.clone()).await;
    assert_eq!(answered, Some(200));

    // The same delivery again: answered as a duplicate, and nothing more is sent.
    let again = client
        .post(format!("{url}/webhooks/ghl"))
        .header("x-ghl-signature", ghl_capi_local::dev::sign(&created))
        .body(created.clone())
        .send()
        .await
        .expect("answered");
    assert_eq!(again.status(), 200);
    let body: Value = again.json().await.expect("json");
    assert_eq!(
        body,
        json!({"status": "duplicate", "webhookId": "wh-status-1"})
    );
    // A forged one: refused.
    let forged = client
        .post(format!("{url}/webhooks/ghl"))
        .header("x-ghl-signature", "Zm9yZ2Vk")
        .body(webhook("ContactCreate", "wh-forged", json!({})))
        .send()
        .await
        .expect("answered");
    assert_eq!(forged.status(), 401);

    // Meta has the event; the journal catches up within moments.
    for _ in 0..100 {
        if !meta.events().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(meta.events().len(), 1);
    let mut page = String::new();
    for _ in 0..50 {
        page = reqwest::get(format!("{admin}/status"))
            .await
            .expect("status page")
            .text()
            .await
            .expect("text");
        if page.contains("<b id=sent>1</b>") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(page.contains("<b id=sent>1</b>"), "{page}");

    // In the browser: what the operator reads.
    let profile = dir.path().join("chromium");
    let dom = browse(&profile, "--dump-dom", &format!("{admin}/status"));
    assert!(dom.contains("<title>ghl-capi status</title>"), "{dom}");
    for shown in [
        r#"<b id="accepted">1</b>"#,
        r#"<b id="refused">1</b>"#,
        r#"<b id="sent">1</b>"#,
        r#"<b id="dead" class="ok">0</b>"#,
    ] {
        assert!(dom.contains(shown), "{shown} not on the page: {dom}");
    }
    assert!(
        dom.contains("<td>duplicate</td>"),
        "the repeat is its own outcome"
    );
    assert!(
        dom.contains("<td>loc1</td>"),
        "the location with a token is listed"
    );
    assert!(!dom.contains("ann@example.com"));
    // Match quality: the Lead Meta took, with its score, and the pixel's readiness.
    assert!(
        dom.contains(r#"<h2 id="quality">Match quality, last 7 days</h2>"#),
        "{dom}"
    );
    assert!(dom.contains("<td>Lead</td><td class=\"n\">1</td>"), "{dom}");
    assert!(
        dom.contains("<h3>Conversion Leads readiness: main</h3>"),
        "{dom}"
    );
    // The report: this week's Lead at loc1, one contact.
    assert!(
        dom.contains(r#"<h2 id="report">Report, last 4 weeks</h2>"#),
        "{dom}"
    );
    assert!(
        dom.contains("<td>loc1</td><td>Lead</td><td class=\"n\">1</td><td class=\"n\">1</td>"),
        "{dom}"
    );
    let artefacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/artefacts");
    std::fs::create_dir_all(&artefacts).expect("artefacts dir");
    let shot = artefacts.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    browse(
        &profile,
        &format!("--screenshot={}", shot.display()),
        &format!("{admin}/status"),
    );
    let png = std::fs::read(&shot).expect("the screenshot is kept");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot"
    );

    // The same figures for Prometheus, under the functions' metric names.
    let metrics = reqwest::get(format!("{admin}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("Requests{Outcome=\"duplicate\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("Requests{Outcome=\"bad_signature\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("EventsSent 1"), "{metrics}");
    // The read of Ann its Lead needed, spent from loc1's GHL budget as enrichment's.
    assert!(
        metrics.contains("GhlBudgetSpent{Use=\"enrichment\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ScoredEvents{Pixel=\"main\",EventName=\"Lead\"} 1"),
        "{metrics}"
    );
    for line in metrics
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        let base = name.trim_end_matches("_sum").trim_end_matches("_count");
        // Local mode's own two, beside the functions' names.
        let local = [
            ghl_capi_local::journal::DROPPED,
            ghl_capi_local::store::SYNCS,
        ];
        assert!(
            ghl_capi::telemetry::NAMES.contains(&base) || local.contains(&base),
            "{name} is no EMF metric name nor one of local mode's own"
        );
    }
    // On the webhook listener, none of the operator's routes.
    for route in ["/status", "/metrics"] {
        let status = reqwest::get(format!("{url}{route}"))
            .await
            .expect("answer")
            .status();
        assert_eq!(status, 404, "{route} on the webhook listener");
    }

    // The contact's journey, while serve runs.
    let traced = trace(&data, &["--contact", "c-ann"]);
    assert!(traced.starts_with("contact c-ann since"), "{traced}");
    for step in [
        "  request  ",
        "  event built  ",
        "  event sent  ",
        "outcome=duplicate",
        "fbtrace_id=",
    ] {
        assert!(traced.contains(step), "{step} missing: {traced}");
    }
    assert!(!traced.contains("ann@example.com"), "{traced}");
    let lines = trace(&data, &["--webhook", "wh-status-1", "--json"]);
    let entries: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(
        entries
            .iter()
            .any(|e| e["message"] == "event sent" && e["source"] == "wh-status-1")
    );
    assert!(trace(&data, &["--webhook", "wh-none"]).contains("nothing since"));
    // A refused delivery's line names the id it claimed.
    let forged = trace(&data, &["--webhook", "wh-forged"]);
    assert!(forged.contains("outcome=bad_signature"), "{forged}");

    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn an_admin_listener_off_loopback_needs_a_token() {
    let dir = tempfile::tempdir().expect("dir");
    let mapping = dir.path().join("mapping.toml");
    std::fs::write(
        &mapping,
        ghl_capi_tests::fixtures::mapping_text_with_token(r#"{ env = "TEST_META_TOKEN" }"#),
    )
    .expect("mapping");
    let output = serve_command(&dir.path().join("data"), &mapping, free_port())
        .args(["--admin-listen", "0.0.0.0:0"])
        .env_remove("ADMIN_TOKEN")
        .stderr(Stdio::piped())
        .output()
        .expect("serve runs");
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("--admin-token"), "{said}");
}
