//! `serve`'s group commit, as a process: webhooks arriving together share one
//! synced commit, none is answered before its commit is on disk, and a kill -9
//! among 64 webhooks in flight loses none that was answered `200`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinSet;

use crate::serve::{Server, admin_in, free_port, serve_command, start_saying, try_deliver};

/// Webhooks in flight at once: a busy GHL.
const IN_FLIGHT: usize = 64;

/// A mapping whose one rule fires on nothing these tests send, so the only
/// synced commits are the webhooks'.
const QUIET_MAPPING: &str = r#"version = 1
[[pixels]]
name = "demo"
dataset_id = "1234567890"
access_token = { env = "META_ACCESS_TOKEN" }

[[rules]]
name = "notes"
trigger = "note.created"
event_name = "Noted"
needs = []
"#;

/// The development sample as the `n`-th new contact of `run`, signed by `try_deliver`.
fn new_contact(run: &str, n: usize) -> (String, Vec<u8>) {
    let id = format!("wh-{run}-{n}");
    (
        id.clone(),
        ghl_capi_local::dev::new_contact(&id, n, Utc::now()),
    )
}

async fn start(dir: &Path, port: u16) -> (Server, String) {
    let mapping = dir.join("mapping.toml");
    std::fs::write(&mapping, QUIET_MAPPING).expect("mapping written");
    let said = dir.join(format!("said-{}.txt", Utc::now().timestamp_micros()));
    let server = start_saying(
        serve_command(&dir.join("data"), &mapping, port),
        port,
        &said,
    )
    .await;
    let admin = admin_in(&said);
    (server, admin)
}

async fn synced(admin: &str) -> u64 {
    let text = reqwest::get(format!("{admin}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix("StoreSyncs "))
        .map_or(0, |n| n.trim().parse().expect("a count"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_arriving_together_share_one_synced_commit_and_wait_for_it() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let (server, admin) = start(dir.path(), port).await;
    let before = synced(&admin).await;

    // Another writer holds the store: nothing can be committed meanwhile.
    let blocker = rusqlite::Connection::open(dir.path().join("data/store.db")).expect("opened");
    blocker
        .execute_batch("BEGIN IMMEDIATE")
        .expect("write lock");
    let client = reqwest::Client::new();
    let answered = Arc::new(AtomicUsize::new(0));
    let mut posts = JoinSet::new();
    for n in 0..IN_FLIGHT {
        let (client, url, answered) = (client.clone(), server.url.clone(), Arc::clone(&answered));
        posts.spawn(async move {
            let status = try_deliver(&client, &url, new_contact("held", n).1).await;
            answered.fetch_add(1, Ordering::SeqCst);
            status
        });
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        answered.load(Ordering::SeqCst),
        0,
        "no webhook is answered before its commit is on disk"
    );
    blocker.execute_batch("COMMIT").expect("released");
    while let Some(status) = posts.join_next().await {
        assert_eq!(status.expect("posted"), Some(200));
    }
    let syncs = synced(&admin).await - before;
    // Committed alone, they would take 64 syncs: here the first waiting, then the rest.
    assert!(
        (1..=4).contains(&syncs),
        "{IN_FLIGHT} webhooks took {syncs} synced commits"
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_among_64_webhooks_in_flight_loses_none_answered() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let (server, _) = start(dir.path(), port).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");

    // Posted 64 at a time, each poster going on to its next; killed midway.
    let next = Arc::new(AtomicUsize::new(0));
    let mut posters = JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let (client, url, next) = (client.clone(), server.url.clone(), Arc::clone(&next));
        posters.spawn(async move {
            let mut answered = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                match try_deliver(&client, &url, new_contact("kill", n).1).await {
                    Some(200) => answered.push(n),
                    // Killed: this one, and any after, GHL would send again.
                    _ => return answered,
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    drop(server);
    let mut answered = Vec::new();
    while let Some(ns) = posters.join_next().await {
        answered.extend(ns.expect("posted"));
    }
    assert!(
        answered.len() > 200,
        "the load ran: {} answered",
        answered.len()
    );

    // Started again: every webhook answered 200 is there already.
    let (server, _) = start(dir.path(), port).await;
    let mut repeats = JoinSet::new();
    for n in answered {
        if repeats.len() >= IN_FLIGHT {
            assert_kept(repeats.join_next().await).await;
        }
        let (client, url) = (client.clone(), server.url.clone());
        repeats.spawn(async move {
            let (id, body) = new_contact("kill", n);
            let answer = client
                .post(format!("{url}/webhooks/ghl"))
                .header("x-ghl-signature", ghl_capi_local::dev::sign(&body))
                .body(body)
                .send()
                .await
                .expect("answered");
            (
                id,
                answer.status().as_u16(),
                answer.text().await.unwrap_or_default(),
            )
        });
    }
    while !repeats.is_empty() {
        assert_kept(repeats.join_next().await).await;
    }
}

type Repeat = Option<Result<(String, u16, String), tokio::task::JoinError>>;

async fn assert_kept(repeat: Repeat) {
    let (id, status, body) = repeat.expect("one").expect("posted");
    assert_eq!(status, 200, "{id}");
    assert!(
        body.contains("duplicate"),
        "{id} kept before the kill: {body}"
    );
}
