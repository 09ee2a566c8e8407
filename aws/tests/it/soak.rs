//! The outage soak on AWS's terms: the three handlers over moto's SQS, DynamoDB and
//! Secrets Manager, run as Lambda runs them, through 20 % Meta 5xx, GHL rate limits
//! on every fifth call, a Meta outage of 10 minutes and a GHL outage of 5 (scaled
//! 1:60, as the hold's base wait is: 2 s becomes 33 ms, 15 min 15 s), and one
//! poison event per 1,000. Nothing may be lost or sent twice, and every dead letter
//! must have a permanent cause. `SOAK_EVENTS` sets the size (10,000 by default).

use std::time::{Duration, Instant};

use ghl_capi::telemetry::percentile;
use ghl_capi_tests::soak::{self, BACKUP_DATASET, Workload};
use ghl_capi_tests::stand_in::{GhlStandIn, MetaStandIn};

use crate::stack::{GHL_TOKEN, Stack};

/// Webhooks sent to the intake at a time; the consumers catch up in between, so
/// the queues stay short (moto's receive slows with depth).
const WAVE: usize = 40;

#[tokio::test]
async fn through_outages_every_event_reaches_meta_once_or_a_permanent_dead_letter() {
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let emf = crate::common::Emf::start();
    let workload = Workload::new(soak::events_wanted(10_000));
    let scaled = [
        ("HOLD_BASE_MS", "33".to_owned()),
        ("HOLD_CAP_SECONDS", "15".to_owned()),
    ];
    let token = r#"{ secret = "{stack}/meta/main" }"#;
    let s = Stack::with(&soak::extra_mapping(token), &scaled).await;
    for location in soak::LOCATIONS {
        let token = serde_json::json!({"access_token": GHL_TOKEN}).to_string();
        ghl_capi_tests::moto::secret(&s.secrets, &format!("{}/ghl/{location}", s.id), &token).await;
    }
    let ghl = GhlStandIn::new(GHL_TOKEN);
    ghl.mount(&s.ghl).await;
    ghl.rate_limit_every(5);
    let backup = MetaStandIn::expecting_token("EAAB-main");
    backup.mount(&s.graph, BACKUP_DATASET).await;
    for meta in [&s.meta, &backup] {
        meta.fail_every(5);
    }

    let started = Instant::now();
    let deadline = started + Duration::from_secs(20 * 60);
    let (meta_down_at, ghl_down_at) = (
        workload.webhooks.len() * 3 / 10,
        workload.webhooks.len() * 6 / 10,
    );
    let (mut sent, mut accepted) = (0, 0);
    let mut acceptance = soak::Accepted::default();
    let mut told = Instant::now();
    // Both consumers take turns, a batch each, as Lambda runs them side by side;
    // another wave of webhooks comes in whenever enrichment has caught up.
    let mut caught_up = true;
    loop {
        assert!(
            Instant::now() < deadline,
            "the soak did not finish: {accepted} accepted"
        );
        if told.elapsed() > Duration::from_secs(15) {
            told = Instant::now();
            let events = s.meta.events().len() + backup.events().len();
            eprintln!(
                "soak: {:.0} s, {accepted} accepted, {events} events at Meta",
                started.elapsed().as_secs_f64()
            );
        }
        if caught_up && sent < workload.webhooks.len() {
            for (_, body) in &workload.webhooks[sent..(sent + WAVE).min(workload.webhooks.len())] {
                if sent == meta_down_at {
                    for meta in [&s.meta, &backup] {
                        meta.down_for(Duration::from_secs(10));
                    }
                }
                if sent == ghl_down_at {
                    ghl.down_for(Duration::from_secs(5));
                }
                if s.deliver(body.clone()).await.0 == 200 {
                    accepted += 1;
                    acceptance.now(body);
                }
                sent += 1;
            }
        }
        let jobs = s.receive(&s.enrich_url).await;
        if !jobs.records.is_empty() {
            let response = s.enrichment.handle(&jobs).await;
            s.delete_done(&s.enrich_url, &jobs, &response).await;
        }
        caught_up = jobs.records.len() < 10;
        let events = s.receive_up_to(&s.dispatch_url, 200).await;
        if !events.records.is_empty() {
            let response = s.dispatch.handle(&events).await;
            s.delete_done(&s.dispatch_url, &events, &response).await;
        }
        if jobs.records.is_empty() && events.records.is_empty() && sent == workload.webhooks.len() {
            if s.pending(&s.enrich_url).await + s.pending(&s.dispatch_url).await == 0 {
                break;
            }
            // Held messages come back after their wait.
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let mut delivered = soak::delivered_to(ghl_capi_tests::fixtures::DATASET, &s.meta.events());
    delivered.extend(soak::delivered_to(BACKUP_DATASET, &backup.events()));
    let letters: Vec<String> = s
        .dead_letters()
        .await
        .iter()
        .map(|l| l["deadLetter"]["code"].as_str().unwrap_or("raw").to_owned())
        .collect();
    let report = workload.tally(accepted, &delivered, &letters, started.elapsed());
    let mut arrivals = s.meta.events_at();
    arrivals.extend(backup.events_at());
    let lags = acceptance.first_event_lags(&arrivals);
    eprintln!(
        "soak (Lambda handlers over moto): {report}; GHL calls {}; a contact's first event \
         accepted to acknowledged by Meta, outages included: p50 {:.2?}, p99 {:.2?} ({} contacts)",
        ghl.requests(),
        percentile(&lags, 50).unwrap_or_default(),
        percentile(&lags, 99).unwrap_or_default(),
        lags.len(),
    );
    report.check(&workload);
    assert!(emf.count("PartnerPaused", &[("Partner", "meta")]) >= 1.0);
    assert!(emf.count("PartnerPaused", &[("Partner", "ghl")]) >= 1.0);
    assert!(
        emf.count(
            "RetryReasons",
            &[("Stage", "dispatch"), ("Reason", "meta_unavailable")]
        ) >= 1.0
    );
    assert!(
        emf.count(
            "RetryReasons",
            &[("Stage", "enrich"), ("Reason", "ghl_rate_limited")]
        ) >= 1.0
    );
}
