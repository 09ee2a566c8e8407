//! The status page and its listener: the figures it reads from the store, its
//! HTML, and who may see it.

use std::time::Duration;

use chrono::Utc;
use ghl_capi::capi::ServerEvent;
use ghl_capi::jobs::{DeadLetter, LetterMessage, Stage};
use ghl_capi::normalize::Field;
use ghl_capi::ports::state::StateStore;
use ghl_capi_local::admin::{AdminError, AdminOptions, bind};
use ghl_capi_local::journal::Entry;
use ghl_capi_local::ports::LocalState;
use ghl_capi_local::status::quality::Served;
use ghl_capi_local::status::{Status, Window, page};
use ghl_capi_local::store::{DEAD, Store};
use serde_json::json;

fn entry(ago_ms: i64, message: &str, fields: serde_json::Value) -> Entry {
    Entry {
        at_ms: Utc::now().timestamp_millis() - ago_ms,
        level: "INFO",
        message: message.into(),
        fields: fields.as_object().cloned().unwrap_or_default(),
    }
}

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

/// A store with a day of work: webhooks (one refused, one a repeat), events
/// built and sent with their lag, a dead letter, audience rows, partner calls,
/// an open breaker and a seeded location.
async fn busy_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("store.db")).expect("store");
    let webhook = |ago, status, outcome: &str| {
        entry(
            ago,
            "request",
            json!({"path": "/webhooks/ghl", "status": status,
            "outcome": outcome, "webhook_id": format!("w{ago}")}),
        )
    };
    let mut entries = vec![
        webhook(MINUTE, 200, "accepted"),
        webhook(2 * MINUTE, 200, "accepted"),
        webhook(3 * MINUTE, 200, "duplicate"),
        webhook(4 * MINUTE, 401, "bad_signature"),
        webhook(5 * HOUR, 200, "accepted"),
        webhook(30 * HOUR, 200, "accepted"),
    ];
    for (i, lag) in [1, 2, 3, 40].into_iter().enumerate() {
        let id = format!("e{i}");
        entries.push(entry(
            MINUTE,
            "event built",
            json!({"event_id": id, "event_name": "Purchase", "webhook_id": "w1"}),
        ));
        entries.push(entry(
            MINUTE,
            "event sent",
            json!({"event_id": id, "pixel": "main", "lag_seconds": lag, "source": "w1"}),
        ));
    }
    entries.push(entry(
        2 * HOUR,
        "dead letter",
        json!({"code": "contact_not_found", "source": "w7"}),
    ));
    entries.push(entry(
        MINUTE,
        "audience request",
        json!({"audience_id": "a1", "operation": "add", "rows": 5, "status": 200}),
    ));
    // A line without its figure counts as none, and breaks nothing.
    entries.push(entry(
        MINUTE,
        "audience request",
        json!({"audience_id": "a1", "operation": "remove", "status": 200}),
    ));
    entries.push(entry(
        MINUTE,
        "capi request",
        json!({"dataset_id": "p1", "status": 200, "latency_ms": 80}),
    ));
    entries.push(entry(
        MINUTE,
        "capi request",
        json!({"dataset_id": "p1", "status": 503, "latency_ms": 900}),
    ));
    // No answer at all (a timeout): status 0, a failure too.
    entries.push(entry(
        MINUTE,
        "capi request",
        json!({"dataset_id": "p1", "status": 0, "latency_ms": 10_000}),
    ));
    entries.push(entry(
        MINUTE,
        "ghl call",
        json!({"location_id": "loc1", "status": 200, "latency_ms": 120}),
    ));
    entries.push(entry(
        MINUTE,
        "reconciliation found changes no webhook delivered",
        json!({"job": "r1", "location_id": "loc1", "changes": 3}),
    ));
    store.append_journal(&entries).expect("journal");

    let letter = DeadLetter::new(
        "w7",
        Stage::Enrich,
        "contact_not_found",
        "GHL has no contact <c7>",
    );
    let body = serde_json::to_string(&LetterMessage {
        dead_letter: letter,
        message: "{\"email\":\"jane@example.com\"}".into(),
    })
    .expect("json");
    store
        .send(DEAD, &body, (None, None), Duration::ZERO)
        .expect("letter");
    let breaker = json!({"opened_at": Utc::now(), "failures": 4, "next_probe": Utc::now(),
        "code": "meta_unavailable", "cause": "503"});
    LocalState(store.clone())
        .set_record(
            "breaker#meta#main",
            &breaker.to_string(),
            Duration::from_secs(600),
        )
        .await
        .expect("breaker");
    (dir, store)
}

#[tokio::test]
async fn the_status_reads_the_hour_and_the_day_from_the_journal() {
    let (_dir, store) = busy_store().await;
    let status = Status::read(&store, &["loc1".into()], &[], Utc::now())
        .await
        .expect("figures");
    assert_eq!(
        (status.accepted.hour, status.accepted.day),
        (2, 3),
        "a repeat is no new webhook; 30 h ago is not the last day"
    );
    assert_eq!((status.refused.hour, status.refused.day), (1, 1));
    assert_eq!(status.accepted_series.hour.iter().sum::<u64>(), 2);
    assert_eq!(status.accepted_series.day.iter().sum::<u64>(), 3);
    assert_eq!(
        status.sent,
        vec![("main".to_owned(), Window { hour: 4, day: 4 })]
    );
    assert_eq!((status.lag_p50_s, status.lag_p99_s), (Some(3), Some(40)));
    assert_eq!(status.dead_lettered[0].0, "contact_not_found");
    assert_eq!(
        status.audience_rows,
        [
            ("add".to_owned(), Window { hour: 5, day: 5 }),
            ("remove".to_owned(), Window::default())
        ]
    );
    assert_eq!((status.graph.count, status.graph.failed), (3, 2));
    assert_eq!(
        (status.graph.p50_ms, status.graph.p99_ms),
        (Some(900), Some(10_000))
    );
    assert_eq!(status.ghl.p50_ms, Some(120));
    assert_eq!(status.letters.len(), 1);
    assert_eq!(
        status
            .backlog
            .iter()
            .find(|b| b.queue == DEAD)
            .map(|b| b.depth),
        Some(1)
    );
    assert_eq!(status.breakers.len(), 1);
    assert!(Status::open(&status.breakers[0].1));
    assert_eq!(status.locations[0].missed_day, 3);
    assert!(status.locations[0].seeded.is_none());
}

#[tokio::test]
async fn the_page_shows_the_figures_escaped_and_links_each_letter() {
    let (_dir, store) = busy_store().await;
    let status = Status::read(&store, &["loc1".into()], &[], Utc::now())
        .await
        .expect("figures");
    let html = page::render(&status);
    assert!(html.starts_with("<!doctype html>"));
    assert!(
        html.contains("<b id=accepted>3</b>"),
        "accepted in the last day"
    );
    assert!(html.contains("<b id=refused>1</b>"));
    assert!(html.contains("<b id=sent>4</b>"));
    assert!(
        html.contains("href=\"/status/dead/"),
        "each letter links to its page"
    );
    assert!(html.contains("open: work held"), "the open breaker");
    assert!(html.contains("not seeded"));
    assert_eq!(
        html.matches("<svg").count(),
        6,
        "three series, hour and day"
    );
    assert!(!html.contains("<script"), "no script");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external asset"
    );
    assert!(
        !html.contains("jane@example.com"),
        "a letter's message is never shown"
    );

    let letter = store.list(DEAD).expect("list").remove(0);
    let message: LetterMessage = serde_json::from_str(&letter.body).expect("letter");
    let shown = page::letter(&message.dead_letter, letter.id);
    assert!(
        shown.contains("GHL has no contact &lt;c7&gt;"),
        "escaped: {shown}"
    );
    assert!(!shown.contains("jane@example.com"));
}

#[tokio::test]
async fn the_page_shows_each_pixels_match_quality_and_its_costliest_gaps() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(&dir.path().join("store.db")).expect("store");
    let state = LocalState(store.clone());
    // Eight Leads with an e-mail, two of them with a phone too; one Purchase with
    // neither, for a pixel the mapping no longer names.
    let lead = |phone: bool| {
        let mut event = ServerEvent::default();
        event.event_name = "Lead".into();
        event.user_data.add(Field::Email, "a@example.com", None);
        if phone {
            event.user_data.add(Field::Phone, "+16505551212", None);
        }
        event
    };
    let leads: Vec<ServerEvent> = (0..8).map(|i| lead(i < 2)).collect();
    let now = Utc::now();
    let counted = ghl_capi::quality::counted(&leads, false);
    ghl_capi::quality::record(&state, "111", &counted, now)
        .await
        .expect("recorded");
    let mut purchase = ServerEvent::default();
    purchase.event_name = "Purchase".into();
    let counted = ghl_capi::quality::counted([&purchase], false);
    ghl_capi::quality::record(&state, "222", &counted, now)
        .await
        .expect("recorded");

    let pixels = [Served {
        name: "main".into(),
        dataset_id: "111".into(),
        test: false,
    }];
    let status = Status::read(&store, &[], &pixels, now)
        .await
        .expect("figures");
    assert_eq!(
        status.quality.len(),
        2,
        "both datasets: {:?}",
        status.quality
    );
    let html = page::render(&status);
    assert!(
        html.contains("<td>main <small>111</small></td><td>Lead</td><td class=n>8</td><td class=n><b>2.4</b></td>\
                       <td class=n>0 %</td><td class=n>0 %</td><td class=n>100 %</td><td class=n>25 %</td>"),
        "{html}"
    );
    assert!(
        html.contains("<td>222</td><td>Purchase</td><td class=n>1</td><td class=n><b>0.0</b></td>")
    );
    assert!(
        html.contains("<li>75 % of Lead events have no phone: GHL has none for these contacts"),
        "{html}"
    );
    assert!(
        html.contains("<li>100 % of Purchase events have no e-mail"),
        "{html}"
    );
}

fn free_address() -> std::net::SocketAddr {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("address")
}

#[tokio::test]
async fn the_admin_listener_wants_its_token_and_a_bare_one_stays_on_loopback() {
    let (_dir, store) = busy_store().await;
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let open = AdminOptions {
        listen: "0.0.0.0:0".parse().expect("address"),
        any_free_port: false,
        hosts: vec![],
        token: None,
        metrics: None,
        locations: vec![],
        pixels: vec![],
    };
    let refused = bind(open).await;
    assert!(
        matches!(refused, Err(AdminError::Unguarded(_))),
        "{refused:?}"
    );

    let listen = free_address();
    let guarded = AdminOptions {
        listen,
        any_free_port: false,
        hosts: vec!["ops.example.net".into()],
        token: Some("s3cret-token".into()),
        metrics: None,
        locations: vec!["loc1".into()],
        pixels: vec![],
    };
    let _server = tokio::spawn(bind(guarded).await.expect("bound").serve(store, stopped));
    let http = reqwest::Client::new();
    let url = format!("http://{listen}/status");
    let none = http.get(&url).send().await.expect("answer");
    assert_eq!(none.status(), 401);
    assert!(
        none.headers().contains_key("www-authenticate"),
        "a browser prompts"
    );
    let wrong = http
        .get(&url)
        .bearer_auth("s3cret-tokeX")
        .send()
        .await
        .expect("answer");
    assert_eq!(wrong.status(), 401);
    let bearer = http
        .get(&url)
        .bearer_auth("s3cret-token")
        .send()
        .await
        .expect("answer");
    assert_eq!(bearer.status(), 200);
    assert!(
        bearer
            .text()
            .await
            .expect("page")
            .contains("ghl-capi status")
    );
    let basic = http
        .get(&url)
        .basic_auth("operator", Some("s3cret-token"))
        .send()
        .await
        .expect("answer");
    assert_eq!(basic.status(), 200);
    let metrics = http
        .get(format!("http://{listen}/metrics"))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .expect("answer");
    assert_eq!(metrics.status(), 404, "no recorder in this process");
    let missing = http
        .get(format!("http://{listen}/status/dead/999"))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .expect("answer");
    assert_eq!(missing.status(), 404);
    // A page of another name pointed at this address (DNS rebinding) is refused,
    // however it got the token; the listener's own names are not.
    for (host, status) in [
        ("evil.example.com", 403),
        ("localhost:3001", 200),
        ("OPS.example.net", 200),
        ("[::1]:3001", 200),
    ] {
        let answer = http
            .get(&url)
            .header("host", host)
            .bearer_auth("s3cret-token")
            .send()
            .await
            .expect("answer");
        assert_eq!(answer.status(), status, "{host}");
    }
}

#[tokio::test]
async fn a_taken_default_admin_address_gives_way_to_a_free_port_and_a_chosen_one_fails_at_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let listen = taken.local_addr().expect("address");
    let options = |any_free_port| AdminOptions {
        listen,
        any_free_port,
        hosts: vec![],
        token: None,
        metrics: None,
        locations: vec![],
        pixels: vec![],
    };
    let fallback = bind(options(true)).await.expect("another port");
    let at = fallback.address().expect("address");
    assert!(at.ip().is_loopback() && at.port() != listen.port());
    assert!(matches!(
        bind(options(false)).await,
        Err(AdminError::Listen(..))
    ));
}
