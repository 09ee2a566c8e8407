//! The outage soak through `ghl-capi serve`, a real process: webhooks posted eight
//! at a time, through 20 % Meta 5xx, GHL rate limits on every fifth call, a Meta
//! outage of 10 minutes and a GHL outage of 5 (scaled 1:60 with the hold's waits),
//! one poison event per 1,000, and `kill -9` at random moments, each followed by a
//! restart (GHL sends again whatever got no answer). Nothing may be lost, and
//! every dead letter must have a permanent cause. Nothing may be sent twice but
//! what a kill repeats: one killed between Meta's answer and the store's note of
//! it sends that request's events again (at most a dispatch batch, 1,000), with
//! their event ids, which Meta drops. `SOAK_EVENTS` sets the size (10,000 by
//! default), `SOAK_SEED` the kill moments.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use ghl_capi_tests::fixtures::{self, DATASET};
use ghl_capi_tests::soak::{self, BACKUP_DATASET, Workload};
use ghl_capi_tests::stand_in::{GhlStandIn, MetaStandIn};
use wiremock::MockServer;

use crate::serve::{free_port, letter_codes, start_with, try_deliver};

/// Webhooks in flight at once, as GHL sends them.
const IN_FLIGHT: usize = 8;
const KILLS: usize = 3;
/// Events a kill may have had in one request to Meta: `serve`'s dispatch batch.
const DISPATCH_BATCH: usize = 1_000;

/// A small deterministic generator, so a failing run can be repeated by its seed.
fn next(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *seed >> 33
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_outages_and_kills_every_event_reaches_meta_once_or_a_permanent_dead_letter() {
    let workload = Workload::new(soak::events_wanted(10_000));
    let mut seed: u64 = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::process::id().into());
    eprintln!("soak (serve): SOAK_SEED={seed}");
    let n = workload.webhooks.len();
    // One kill in each stretch of the run, at a random webhook of it.
    let kills: Vec<usize> = (0..KILLS)
        .map(|k| k * n / KILLS + next(&mut seed) as usize % (n / KILLS).max(1))
        .collect();

    let (ghl_server, graph) = (MockServer::start().await, MockServer::start().await);
    let ghl = GhlStandIn::new("pit-soak");
    ghl.mount(&ghl_server).await;
    ghl.rate_limit_every(5);
    let (meta, backup) = (
        MetaStandIn::expecting_token("EAAB-local"),
        MetaStandIn::expecting_token("EAAB-local"),
    );
    meta.mount(&graph, DATASET).await;
    backup.mount(&graph, BACKUP_DATASET).await;
    for m in [&meta, &backup] {
        m.fail_every(5);
    }

    let dir = tempfile::tempdir().expect("dir");
    let mapping = dir.path().join("mapping.toml");
    let token = r#"{ env = "TEST_META_TOKEN" }"#;
    let text = fixtures::mapping_text_with_token(token) + &soak::extra_mapping(token);
    std::fs::write(&mapping, text).expect("mapping written");
    let data = dir.path().join("data");
    let port = free_port();
    let mut extra: Vec<(String, String)> = soak::LOCATIONS
        .iter()
        .map(|l| (format!("GHL_TOKEN_{l}"), "pit-soak".to_owned()))
        .collect();
    extra.push(("HOLD_BASE_MS".into(), "33".into()));
    extra.push(("HOLD_CAP_SECONDS".into(), "15".into()));
    // Every held retry is a warning: thousands here.
    extra.push(("RUST_LOG".into(), "error".into()));
    let urls = (ghl_server.uri(), graph.uri());
    let urls = (urls.0.as_str(), urls.1.as_str());
    let mut server = Some(start_with(&data, &mapping, urls, port, &extra).await);

    let started = Instant::now();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut to_send: VecDeque<(String, Vec<u8>)> = workload.webhooks.iter().cloned().collect();
    let mut accepted: HashSet<String> = HashSet::new();
    let (mut sent, mut killed) = (0, 0);
    while let Some(first) = to_send.pop_front() {
        let mut wave = vec![first];
        while wave.len() < IN_FLIGHT
            && let Some(more) = to_send.pop_front()
        {
            wave.push(more);
        }
        for _ in &wave {
            sent += 1;
            if sent == n * 3 / 10 {
                for m in [&meta, &backup] {
                    m.down_for(Duration::from_secs(10));
                }
            }
            if sent == n * 6 / 10 {
                ghl.down_for(Duration::from_secs(5));
            }
        }
        let mut posts = tokio::task::JoinSet::new();
        for (id, body) in wave {
            let url = server.as_ref().expect("serving").url.clone();
            let client = client.clone();
            posts.spawn(async move {
                let status = try_deliver(&client, &url, body.clone()).await;
                (id, body, status)
            });
        }
        // Killed while these are in flight, now and then.
        let kill = killed < kills.len() && sent >= kills[killed];
        if kill {
            tokio::time::sleep(Duration::from_millis(next(&mut seed) % 50)).await;
            // Dropping it kills it (SIGKILL: nothing is flushed or closed).
            server = None;
            killed += 1;
        }
        while let Some(done) = posts.join_next().await {
            let (id, body, status) = done.expect("posted");
            match status {
                Some(200) => {
                    accepted.insert(id);
                }
                // No answer, or not a 2xx: GHL delivers it again.
                _ => to_send.push_back((id, body)),
            }
        }
        if kill {
            server = Some(start_with(&data, &mapping, urls, port, &extra).await);
        }
    }

    // Everything accepted; now it must all arrive, or be a letter, by itself.
    let expected_letters: usize = workload.expected_letters.values().sum();
    let deadline = Instant::now() + Duration::from_secs(10 * 60);
    let mut told = Instant::now();
    loop {
        let mut distinct = soak::delivered_to(DATASET, &meta.events());
        distinct.extend(soak::delivered_to(BACKUP_DATASET, &backup.events()));
        let delivered = distinct.iter().collect::<HashSet<_>>().len();
        if delivered >= workload.expected_events && letter_codes(&data).len() >= expected_letters {
            // A little longer, to catch anything that should not come.
            tokio::time::sleep(Duration::from_secs(2)).await;
            break;
        }
        assert!(Instant::now() < deadline, "not all delivered: {delivered}");
        if told.elapsed() > Duration::from_secs(15) {
            told = Instant::now();
            eprintln!(
                "soak (serve): {:.0} s, {delivered} events at Meta",
                started.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(server);
    let mut delivered = soak::delivered_to(DATASET, &meta.events());
    delivered.extend(soak::delivered_to(BACKUP_DATASET, &backup.events()));
    let report = workload.tally(
        accepted.len(),
        &delivered,
        &letter_codes(&data),
        started.elapsed(),
    );
    eprintln!(
        "soak (serve, {killed} kill -9 at webhooks {kills:?}): {report}; GHL calls {}",
        ghl.requests()
    );
    report.check_with_repeats(&workload, killed * DISPATCH_BATCH);
}
