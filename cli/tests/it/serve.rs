//! `ghl-capi serve` end to end, as a real process: signed webhooks and a posted
//! conversion reach a mock Graph API through a mock GHL, duplicates produce nothing
//! more, and a kill -9 in the middle loses nothing that was acknowledged.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use ghl_capi_tests::fixtures::{self, contact, webhook};
use ghl_capi_tests::stand_in::MetaStandIn;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The fixture mapping, its pixel's token in `TEST_META_TOKEN`.
pub(crate) fn mapping_text() -> String {
    fixtures::mapping_text_with_token(r#"{ env = "TEST_META_TOKEN" }"#)
}

/// Meta, taking only requests with the pixel's token.
async fn meta(graph: &MockServer) -> MetaStandIn {
    let meta = MetaStandIn::expecting_token("EAAB-local");
    meta.mount(graph, fixtures::DATASET).await;
    meta
}

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `ghl-capi serve` on `data` with `mapping`, listening on `port` (its admin
/// listener on a port of its own, unless `--admin-listen` says otherwise).
pub(crate) fn serve_command(data: &Path, mapping: &Path, port: u16) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ghl-capi"));
    command
        .args(["serve", "--dev", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data)
        .arg("--mapping")
        .arg(mapping)
        // Off unless a test turns it on (`RECONCILE_EVERY` in its variables).
        .env("RECONCILE_EVERY", "0")
        .env("GHL_APP_ID", fixtures::APP_ID)
        .env("ADMIN_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null());
    command
}

async fn start(data: &Path, mapping: &Path, ghl: &str, graph: &str, port: u16) -> Server {
    start_with(data, mapping, (ghl, graph), port, &[]).await
}

/// `serve` on `data` with `mapping`, GHL and Graph at `urls`, and the variables
/// `extra` beside the usual ones; once it answers `/health`.
pub(crate) async fn start_with(
    data: &Path,
    mapping: &Path,
    (ghl, graph): (&str, &str),
    port: u16,
    extra: &[(String, String)],
) -> Server {
    let child = serve_command(data, mapping, port)
        .env("GHL_API_BASE_URL", ghl)
        .env("GRAPH_API_BASE_URL", graph)
        .env("GHL_TOKEN_loc1", "pit-local")
        .env("TEST_META_TOKEN", "EAAB-local")
        .env(
            "CONVERSION_API_KEYS",
            r#"[{"id": "local", "key": "ck-local", "locations": ["loc1"]}]"#,
        )
        .env("RUST_LOG", "warn")
        .envs(extra.iter().map(|(k, v)| (k, v)))
        .stderr(Stdio::inherit())
        .spawn()
        .expect("serve starts");
    up(Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
    })
    .await
}

/// `command` started with what it says (stdout and stderr) going to the file
/// `said`, once it answers `/health` on `port`.
pub(crate) async fn start_saying(mut command: Command, port: u16, said: &Path) -> Server {
    let out = std::fs::File::create(said).expect("a file for what serve says");
    let child = command
        .stdout(out.try_clone().expect("shared"))
        .stderr(out)
        .spawn()
        .expect("serve starts");
    up(Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
    })
    .await
}

/// The operator's listener's address, as `serve` said it (`…/status`, `…/metrics`).
pub(crate) fn admin_in(said: &Path) -> String {
    let log = std::fs::read_to_string(said).expect("what serve said");
    log.lines()
        .find_map(|l| l.split("status page: ").nth(1)?.split(',').next())
        .expect("serve says where its status page is")
        .trim_end_matches("/status")
        .to_owned()
}

/// `server` once it answers `/health`.
pub(crate) async fn up(server: Server) -> Server {
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(format!("{}/health", server.url)).await
            && r.status() == 200
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("serve did not come up");
}

/// A data directory and `mapping` in a fresh folder, and `serve` on them with the
/// partners at `ghl` and `graph` (the folder goes when it is dropped).
pub(crate) async fn serving(
    mapping: &str,
    (ghl, graph): (&MockServer, &MockServer),
) -> (tempfile::TempDir, std::path::PathBuf, Server) {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("mapping.toml");
    std::fs::write(&file, mapping).expect("mapping written");
    let data = dir.path().join("data");
    let urls = (ghl.uri(), graph.uri());
    let server = start_with(&data, &file, (&urls.0, &urls.1), free_port(), &[]).await;
    (dir, data, server)
}

/// Posts `conversion` for `contact` to `server` with the local key: its status.
pub(crate) async fn post_conversion(server: &Server, contact: &str, conversion: &Value) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/contacts/{contact}/conversions", server.url))
        .bearer_auth("ck-local")
        .json(conversion)
        .send()
        .await
        .expect("answered")
        .status()
        .as_u16()
}

/// `data`'s letters' codes once `meta` has `events` events and the store `letters`
/// letters (or five seconds have passed).
pub(crate) async fn settled(
    data: &Path,
    meta: &MetaStandIn,
    (events, letters): (usize, usize),
) -> Vec<String> {
    for _ in 0..50 {
        if meta.events().len() >= events && letter_codes(data).len() >= letters {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A little longer, to catch anything that should not come.
    tokio::time::sleep(Duration::from_millis(300)).await;
    letter_codes(data)
}

async fn deliver(server: &Server, body: Vec<u8>) -> u16 {
    try_deliver(&reqwest::Client::new(), &server.url, body)
        .await
        .expect("answered")
}

/// Posts `body`, signed with the development key, to `url`'s webhook route: the
/// status, or `None` when nothing answered.
pub(crate) async fn try_deliver(client: &reqwest::Client, url: &str, body: Vec<u8>) -> Option<u16> {
    let signature = ghl_capi_local::dev::sign(&body);
    let answer = client
        .post(format!("{url}/webhooks/ghl"))
        .header("x-ghl-signature", signature)
        .body(body)
        .send()
        .await
        .ok()?;
    Some(answer.status().as_u16())
}

/// The code of each letter in `data`'s dead-letter queue (`dlq list --json`).
pub(crate) fn letter_codes(data: &Path) -> Vec<String> {
    let listed = Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .args(["dlq", "list", "--json"])
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("dlq list runs");
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|l| {
            let letter: Value = serde_json::from_str(l).expect("a JSON letter");
            letter["code"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

async fn wait_for(meta: &MetaStandIn, n: usize) -> Vec<Value> {
    for _ in 0..150 {
        let events = meta.events();
        if events.len() >= n {
            // A little longer, to catch any event that should not come.
            tokio::time::sleep(Duration::from_millis(500)).await;
            return meta.events();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    meta.events()
}

fn names(events: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = events
        .iter()
        .map(|e| e["event_name"].as_str().unwrap_or("").to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_reach_meta_through_serve_once_even_across_a_kill() {
    let ghl = MockServer::start().await;
    let graph = MockServer::start().await;
    // Bob's reads are slow, so the kill below finds his opportunity in hand.
    for (id, email, tags, delay) in [
        ("c-ann", "ann@example.com", &[][..], 0),
        ("c-bob", "bob@example.com", &["vip"][..], 1_500),
    ] {
        Mock::given(method("GET"))
            .and(path(format!("/contacts/{id}")))
            .and(header("authorization", "Bearer pit-local"))
            .and(header("version", "2021-07-28"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"contact": contact(id, email, tags)}))
                    .set_delay(Duration::from_millis(delay)),
            )
            .mount(&ghl)
            .await;
    }
    let meta = meta(&graph).await;
    let dir = tempfile::tempdir().expect("dir");
    let mapping = dir.path().join("mapping.toml");
    std::fs::write(&mapping, mapping_text()).expect("mapping written");
    let data = dir.path().join("data");
    let port = free_port();

    let server = start(&data, &mapping, &ghl.uri(), &graph.uri(), port).await;
    let created = webhook(
        "ContactCreate",
        "wh-created",
        contact("c-ann", "ann@example.com", &[]),
    );
    assert_eq!(deliver(&server, created.clone()).await, 200);
    assert_eq!(
        deliver(&server, created.clone()).await,
        200,
        "a redelivery is acknowledged"
    );
    let mut before = contact("c-bob", "bob@example.com", &[]);
    before["tags"] = json!([]);
    assert_eq!(
        deliver(&server, webhook("ContactUpdate", "wh-bob-0", before)).await,
        200
    );
    let events = wait_for(&meta, 1).await;
    assert_eq!(
        names(&events),
        ["Lead"],
        "one Lead for the created contact, not two"
    );

    // Accepted, then killed at once: whatever was acknowledged must still arrive.
    let tagged = webhook(
        "ContactTagUpdate",
        "wh-tagged",
        contact("c-bob", "bob@example.com", &["vip"]),
    );
    assert_eq!(deliver(&server, tagged).await, 200);
    let won = json!({"id": "opp-1", "contactId": "c-bob", "status": "won", "monetaryValue": 300,
        "pipelineId": "p", "pipelineStageId": "s", "name": "Deal"});
    assert_eq!(
        deliver(&server, webhook("OpportunityStatusUpdate", "wh-won", won)).await,
        200
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(server);

    let server = start(&data, &mapping, &ghl.uri(), &graph.uri(), port).await;
    assert_eq!(
        deliver(&server, created).await,
        200,
        "a redelivery after the restart"
    );
    let conversion = json!({"locationId": "loc1", "eventType": "Purchase", "value": 42.0,
        "currency": "USD", "timestamp": Utc::now().to_rfc3339(), "eventId": "order-1"});
    assert_eq!(post_conversion(&server, "c-ann", &conversion).await, 202);

    let events = wait_for(&meta, 4).await;
    assert_eq!(
        names(&events),
        ["CompleteRegistration", "Lead", "Purchase", "Purchase"],
        "{events:#?}"
    );
    let ids: std::collections::HashSet<&str> = events
        .iter()
        .filter_map(|e| e["event_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 4, "no event twice");
    assert!(ids.contains("order-1"));

    assert!(letter_codes(&data).is_empty(), "no dead letters");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_listed_with_its_reason_and_redriven_once_fixed() {
    let ghl = MockServer::start().await;
    let graph = MockServer::start().await;
    let meta = meta(&graph).await;
    // GHL does not know the contact yet.
    Mock::given(method("GET"))
        .and(path("/contacts/c-new"))
        .respond_with(ResponseTemplate::new(404))
        .up_to_n_times(1)
        .mount(&ghl)
        .await;
    let dir = tempfile::tempdir().expect("dir");
    let mapping = dir.path().join("mapping.toml");
    std::fs::write(&mapping, mapping_text()).expect("mapping written");
    let data = dir.path().join("data");
    let server = start(&data, &mapping, &ghl.uri(), &graph.uri(), free_port()).await;
    // A second serve on the same store would take the first one's messages in hand.
    let mut second = Server {
        child: serve_command(&data, &mapping, free_port())
            .stderr(Stdio::piped())
            .spawn()
            .expect("a second serve starts"),
        url: String::new(),
    };
    // Polled, so that a second serve that does start fails the test, not hangs it.
    let mut refused = None;
    for _ in 0..100 {
        refused = second.child.try_wait().expect("waits");
        if refused.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if refused.is_none() {
        // Still serving: stop it, so its stderr ends and the assertion below tells.
        let _ = second.child.kill();
        let _ = second.child.wait();
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = second.child.stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stderr).expect("stderr");
    }
    assert_eq!(refused.and_then(|s| s.code()), Some(1), "{stderr}");
    assert!(
        stderr.contains("another `ghl-capi serve` is using"),
        "{stderr}"
    );
    let new = contact("c-new", "new@example.com", &[]);
    assert_eq!(
        deliver(&server, webhook("ContactCreate", "wh-new", new.clone())).await,
        200
    );

    let dlq = |command: &str| {
        Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
            .args(["dlq", command])
            .arg("--data-dir")
            .arg(&data)
            .output()
            .expect("dlq runs")
    };
    let mut listed = String::new();
    for _ in 0..50 {
        listed = String::from_utf8_lossy(&dlq("list").stdout).into_owned();
        if !listed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        listed.starts_with("contact_not_found") && listed.contains("wh-new"),
        "{listed}"
    );
    assert!(meta.events().is_empty());

    Mock::given(method("GET"))
        .and(path("/contacts/c-new"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"contact": new})))
        .mount(&ghl)
        .await;
    let redriven = dlq("redrive");
    assert!(redriven.status.success());
    assert!(String::from_utf8_lossy(&redriven.stdout).starts_with("redriven: 1;"));
    assert_eq!(names(&wait_for(&meta, 1).await), ["Lead"]);
    assert!(
        dlq("list").stdout.is_empty(),
        "the dead-letter queue is empty"
    );
}

/// GHL holding Ann's contact (`c-ann`), and Meta taking the pixel's token.
pub(crate) async fn ann_partners() -> (MockServer, MockServer, MetaStandIn) {
    let ghl = MockServer::start().await;
    let graph = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/contacts/c-ann"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"contact": contact("c-ann", "ann@example.com", &[])})),
        )
        .mount(&ghl)
        .await;
    let meta = meta(&graph).await;
    (ghl, graph, meta)
}

/// [`serve_command`] with the partners at `ghl` and `graph`, and their tokens.
pub(crate) fn serve_with_partners(
    data: &Path,
    mapping: &Path,
    port: u16,
    (ghl, graph): (&MockServer, &MockServer),
) -> Command {
    let mut command = serve_command(data, mapping, port);
    command
        .env("GHL_API_BASE_URL", ghl.uri())
        .env("GRAPH_API_BASE_URL", graph.uri())
        .env("GHL_TOKEN_loc1", "pit-local")
        .env("TEST_META_TOKEN", "EAAB-local");
    command
}

/// Delivers `body` once `serve` at `url` answers (it may be starting): its status.
pub(crate) async fn deliver_once_up(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
) -> Option<u16> {
    for _ in 0..100 {
        if let Some(status) = try_deliver(client, url, body.clone()).await {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// `--log-format json`: every line on stderr one JSON object; the request line of
/// a webhook names its id, and no line carries the contact's email. Audit detail
/// (a GHL call that answered, the `vip` rule watching another tag) is not logged at
/// `info`, yet the journal keeps it: the status page counts the call, and `trace`
/// says why the rule did not fire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_name_the_webhook_carry_no_pii_and_leave_detail_to_the_journal() {
    let (ghl, graph, meta) = ann_partners().await;
    let dir = tempfile::tempdir().expect("dir");
    let mapping = dir.path().join("mapping.toml");
    std::fs::write(&mapping, mapping_text()).expect("mapping written");
    let port = free_port();
    let child = serve_with_partners(&dir.path().join("data"), &mapping, port, (&ghl, &graph))
        .args(["--log-format", "json"])
        .env("RUST_LOG", "info")
        .stdout(std::fs::File::create(dir.path().join("serve.out")).expect("file"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let url = format!("http://127.0.0.1:{port}");
    // Stopped when dropped, even by a failed assertion.
    let mut server = Server {
        child,
        url: url.clone(),
    };
    let pipe = server.child.stderr.take();
    let created = webhook(
        "ContactCreate",
        "wh-json-1",
        contact("c-ann", "ann@example.com", &["newsletter"]),
    );
    let answered = deliver_once_up(&reqwest::Client::new(), &url, created).await;
    assert_eq!(answered, Some(200));
    assert_eq!(names(&wait_for(&meta, 1).await), ["Lead"]);
    let admin = admin_in(&dir.path().join("serve.out"));
    let counted = "<tr><td>GHL API</td><td class=n>1</td>";
    let mut page = String::new();
    for _ in 0..50 {
        let answer = reqwest::get(format!("{admin}/status")).await.expect("page");
        page = answer.text().await.expect("text");
        if page.contains(counted) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        page.contains(counted),
        "the journal kept the GHL call: {page}"
    );
    let traced = Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .args(["trace", "--webhook", "wh-json-1", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .expect("trace runs");
    let traced = String::from_utf8_lossy(&traced.stdout);
    assert!(
        traced.lines().any(|l| l.contains("rule did not fire")
            && l.contains("rule=vip")
            && l.contains("unmet=trigger.tag one_of")
            && l.contains("[debug]")),
        "{traced}"
    );
    drop(server);
    let mut stderr = String::new();
    if let Some(mut pipe) = pipe {
        std::io::Read::read_to_string(&mut pipe, &mut stderr).expect("stderr");
    }
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["fields"]["message"] == "request"
            && l["fields"]["webhook_id"] == "wh-json-1"
            && l["fields"]["status"] == 200),
        "{stderr}"
    );
    assert!(lines.iter().all(|l| l["timestamp"].is_string()), "{stderr}");
    assert!(
        !lines.iter().any(|l| ["ghl call", "rule did not fire"]
            .contains(&l["fields"]["message"].as_str().unwrap_or_default())),
        "a GHL call that answered and a rule watching another tag are detail: {stderr}"
    );
    assert!(!stderr.contains("ann@example.com"), "{stderr}");
}
