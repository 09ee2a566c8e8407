//! Delivering one pixel's events: batches of at most 1,000, one invalid event
//! isolated by halving, token errors held and outages retried.

use ghl_capi::capi::ServerEvent;
use ghl_capi::dispatch::{Delivery, deliver};
use ghl_capi_tests::fakes::FakeMeta;

fn events(n: usize, bad: &[usize]) -> Vec<ServerEvent> {
    (0..n)
        .map(|i| {
            let mut event = ServerEvent::default();
            event.event_name = if bad.contains(&i) { "Bad" } else { "Lead" }.into();
            event.event_time = i as i64;
            event
        })
        .collect()
}

#[tokio::test]
async fn requests_hold_at_most_a_thousand_events() {
    let meta = FakeMeta::default();
    let outcomes = deliver(&meta, "123", None, &events(2500, &[])).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Delivery::Delivered { .. }))
    );
    assert_eq!(meta.sizes(), [1000, 1000, 500]);
}

#[tokio::test]
async fn one_invalid_event_is_isolated_and_the_rest_are_sent() {
    let meta = FakeMeta::default();
    let outcomes = deliver(&meta, "123", None, &events(1000, &[617])).await;
    for (i, outcome) in outcomes.iter().enumerate() {
        match i {
            617 => assert!(
                matches!(outcome, Delivery::DeadLetter { reason } if reason.contains("2804009") && reason.contains("Purchase needs a value"))
            ),
            _ => assert!(matches!(outcome, Delivery::Delivered { .. }), "event {i}"),
        }
    }
    // Halving finds one offender in about 2·log2(1000) requests, not 1,000.
    assert!(meta.sizes().len() <= 22);
}

#[tokio::test]
async fn several_offenders_are_all_found_each_batch_spending_a_bounded_number_of_requests() {
    let all = events(1000, &[0, 13, 39, 500, 998]);
    let mut left: Vec<usize> = (0..all.len()).collect();
    let (mut dead, mut delivered, mut rounds) = (Vec::new(), 0, 0);
    while !left.is_empty() {
        rounds += 1;
        assert!(rounds <= 5, "offenders found too slowly: {left:?} left");
        let meta = FakeMeta::default();
        let batch: Vec<ServerEvent> = left.iter().map(|i| all[*i].clone()).collect();
        let outcomes = deliver(&meta, "123", None, &batch).await;
        // About 2·log2(1000) + 5 requests at the most, never 2n − 1.
        assert!(meta.sizes().len() <= 25, "{} requests", meta.sizes().len());
        let mut undecided = Vec::new();
        for (i, outcome) in left.iter().zip(outcomes) {
            match outcome {
                Delivery::DeadLetter { .. } => dead.push(*i),
                Delivery::Delivered { .. } => delivered += 1,
                Delivery::Undecided => undecided.push(*i),
                other => panic!("event {i}: {other:?}"),
            }
        }
        left = undecided;
    }
    dead.sort();
    assert_eq!(dead, [0, 13, 39, 500, 998]);
    assert_eq!(delivered, 995);
    assert!(
        rounds > 1,
        "five offenders take more than one batch's budget"
    );
}

#[tokio::test]
async fn token_errors_hold_every_event_and_transients_retry_them() {
    let token = FakeMeta::answering(
        400,
        r#"{"error":{"code":190,"error_subcode":463,"message":"expired"}}"#,
    );
    assert!(
        deliver(&token, "123", None, &events(3, &[]))
            .await
            .iter()
            .all(|o| matches!(o, Delivery::Condemned { .. }))
    );
    let busy = FakeMeta::answering(503, "<html>");
    assert!(
        deliver(&busy, "123", None, &events(3, &[]))
            .await
            .iter()
            .all(|o| matches!(o, Delivery::Retry { .. }))
    );
    let short = FakeMeta::answering(200, r#"{"events_received":2}"#);
    assert!(
        deliver(&short, "123", None, &events(3, &[]))
            .await
            .iter()
            .all(|o| matches!(o, Delivery::Retry { .. }))
    );
}
