//! GHL's budget, governed: a location at its budget keeps real-time enrichment
//! flowing while reconciliation waits for what enrichment leaves; and a contact
//! read serves the later jobs of that contact until a webhook tells of a change.

use std::time::Duration;

use chrono::Utc;
use ghl_capi::batch::Retry;
use ghl_capi::ghl::GhlError;
use ghl_capi::ghl::budget::Use;
use ghl_capi::pull::reconcile::{ReconcileError, Reconciled, last_run};
use ghl_capi_tests::contacts_stand_in::Limits;
use ghl_capi_tests::fixtures::{LOCATION, mapping};
use ghl_capi_tests::pipeline::enrich_batch;

use super::{World, ago, by_rule, client};

/// GHL's limits, with `day_left` of the day's 200,000 left.
fn limits(day_left: u64) -> Limits {
    Limits {
        per_window: 100,
        window: Duration::from_secs(10),
        per_day: 200_000,
        day_left,
    }
}

/// `contact`'s `opportunity` won now, as its webhook tells it: the `won` rule
/// reads the contact.
async fn won(world: &World, opportunity: &str, contact: &str) {
    let ghl = &world.ghl;
    ghl.create_opportunity(opportunity, contact, ("s1", "open"), ago(60));
    ghl.move_opportunity(opportunity, ("s1", "won"), Utc::now());
    (world.deliver_opportunity("OpportunityStatusUpdate", opportunity)).await;
}

async fn kept(world: &World) -> Reconciled {
    let run = last_run(&world.state, LOCATION).await.expect("state");
    run.expect("a run kept")
}

#[tokio::test]
async fn a_location_at_its_budget_keeps_real_time_enrichment_flowing_while_reconciliation_waits() {
    let mut world = World::new(10).await;
    world.reconcile().await;
    let baseline = kept(&world).await;
    // 30,000 of the day left: less than enrichment's share (80 %, 160,000).
    world.ghl.limit(limits(30_000));
    won(&world, "o1", "c1").await;
    assert_eq!(by_rule(&world.enrich_queued().await), ["won"]);

    let searches = world.ghl.searches().len();
    let waited = world.try_reconcile().await.expect_err("it waits");
    assert!(
        matches!(
            waited,
            ReconcileError::Ghl(GhlError::Reserved {
                for_use: Use::Reconcile,
                ..
            })
        ),
        "{waited:?}"
    );
    assert_eq!(world.ghl.searches().len(), searches, "GHL was not asked");
    assert_eq!(
        kept(&world).await.watermark,
        baseline.watermark,
        "nothing skipped"
    );

    for i in 2..6 {
        won(&world, &format!("o{i}"), &format!("c{i}")).await;
    }
    let sent = world.enrich_queued().await;
    assert_eq!(by_rule(&sent), ["won"; 4], "real-time events flow");
    assert_eq!(world.ghl.reads().len(), 5, "each read made");

    // A new day: GHL's next answer says so, and reconciliation goes on.
    world.ghl.limit(limits(200_000));
    won(&world, "o6", "c6").await;
    world.enrich_queued().await;
    world
        .try_reconcile()
        .await
        .expect("the budget allows it again");
    assert!(world.ghl.searches().len() > searches, "it listed");
    assert!(kept(&world).await.watermark > baseline.watermark);
}

#[tokio::test]
async fn a_contact_read_serves_its_later_jobs_until_a_webhook_tells_of_a_change() {
    let mut world = World::new(3).await;
    won(&world, "o1", "c1").await;
    assert_eq!(by_rule(&world.enrich_queued().await), ["won"]);
    // Another job of c1, in a batch of its own: the read serves it.
    won(&world, "o2", "c1").await;
    assert_eq!(by_rule(&world.enrich_queued().await), ["won"]);
    assert_eq!(world.ghl.reads(), ["c1"], "one read for both");

    // c1 changed, as its webhook tells: its next job reads it again.
    world.ghl.retag("c1", &["lead", "vip"], Utc::now());
    world.deliver("ContactTagUpdate", "c1").await;
    world.enrich_queued().await;
    won(&world, "o3", "c1").await;
    assert_eq!(by_rule(&world.enrich_queued().await), ["won"]);
    assert_eq!(
        world.ghl.reads(),
        ["c1", "c1"],
        "read again after the change"
    );
}

/// Enriches what was queued since the last call: the records handed back.
async fn enrich_retried(world: &mut World) -> Vec<Retry> {
    let sent = world.enrich.sent();
    let fresh = sent[world.handled..].to_vec();
    world.handled = sent.len();
    let (retried, _, dead) = enrich_batch(&mapping(), &world.client, &world.state, &fresh).await;
    assert!(dead.sent().is_empty(), "{:?}", dead.sent());
    retried
}

#[tokio::test]
async fn a_location_whose_ghl_day_is_spent_holds_its_jobs_without_calling_or_pausing_ghl() {
    let mut world = World::new(4).await;
    world.ghl.limit(limits(0));
    won(&world, "o1", "c1").await;
    let retried = enrich_retried(&mut world).await;
    assert_eq!(
        retried[0].reason.code, "ghl_rate_limited",
        "GHL's 429 says the day is spent"
    );
    // Known now: the next jobs are held without a call, and GHL is not paused for
    // them (a breaker opens after three failures in a row).
    for _ in 0..ghl_capi::hold::breaker::OPEN_AFTER {
        won(&world, "o2", "c2").await;
        let retried = enrich_retried(&mut world).await;
        assert_eq!(retried[0].reason.code, "ghl_budget_reserved", "{retried:?}");
        let after = retried[0].after.expect("a wait");
        assert!(
            after > Duration::from_secs(10),
            "until GHL is asked again: {after:?}"
        );
    }
    assert_eq!(world.ghl.refused(), 1, "no call for the others");
    // A new day: a process that hears of it reads, and no breaker held the location.
    world.ghl.limit(limits(200_000));
    world.client = client(&world._server);
    won(&world, "o3", "c3").await;
    assert_eq!(by_rule(&world.enrich_queued().await), ["won"], "o3 sent");
    assert_eq!(world.ghl.reads(), ["c3"]);
}
