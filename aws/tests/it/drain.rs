//! After a partner's outage, held work comes back promptly, on AWS's terms (the
//! handlers over moto's SQS and DynamoDB, as Lambda runs them): a 10-minute Meta
//! outage and a 3-minute GHL outage, scaled 1:10 (the hold's first wait 200 ms, its
//! longest 90 s, probes at most 1.5 s apart), are drained within 6 s of the
//! partner's return: a minute, unscaled.

use std::time::{Duration, Instant};

use ghl_capi_tests::fixtures::{contact, webhook};
use ghl_capi_tests::soak::Accepted;
use ghl_capi_tests::stand_in::GhlStandIn;

use crate::stack::{GHL_TOKEN, Stack};

/// A minute, scaled 1:10.
const MINUTE: Duration = Duration::from_secs(6);

/// Runs the consumers as Lambda would while webhooks come in, one every 700 ms for
/// `during`, then until both queues are empty: how many came.
async fn run(s: &Stack, accepted: &mut Accepted, first: usize, during: Duration) -> usize {
    let started = Instant::now();
    let deadline = started + during + Duration::from_secs(90);
    let mut next = (first, started);
    loop {
        assert!(Instant::now() < deadline, "the queues did not drain");
        if started.elapsed() < during && Instant::now() >= next.1 {
            let body = webhook(
                "ContactCreate",
                &format!("wh-{}", next.0),
                contact(
                    &format!("c{}", next.0),
                    &format!("c{}@example.com", next.0),
                    &[],
                ),
            );
            accepted.now(&body);
            assert_eq!(s.deliver(body).await.0, 200);
            next = (next.0 + 1, Instant::now() + Duration::from_millis(700));
        }
        let jobs = s.receive(&s.enrich_url).await;
        if !jobs.records.is_empty() {
            let answer = s.enrichment.handle(&jobs).await;
            s.delete_done(&s.enrich_url, &jobs, &answer).await;
        }
        let events = s.receive_up_to(&s.dispatch_url, 100).await;
        if !events.records.is_empty() {
            let answer = s.dispatch.handle(&events).await;
            s.delete_done(&s.dispatch_url, &events, &answer).await;
        }
        if jobs.records.is_empty() && events.records.is_empty() {
            if started.elapsed() >= during
                && s.pending(&s.enrich_url).await + s.pending(&s.dispatch_url).await == 0
            {
                return next.0 - first;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn after_an_outage_of_meta_or_ghl_the_held_events_reach_meta_within_a_minute() {
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let scaled = [
        ("HOLD_BASE_MS", "200".to_owned()),
        ("HOLD_CAP_SECONDS", "90".to_owned()),
        ("HOLD_PROBE_CAP_MS", "1500".to_owned()),
    ];
    let s = Stack::with("", &scaled).await;
    let ghl = GhlStandIn::new(GHL_TOKEN);
    ghl.mount(&s.ghl).await;
    let mut accepted = Accepted::default();

    // Meta down for 10 minutes (60 s scaled), webhooks coming in all along.
    s.meta.down_for(Duration::from_secs(60));
    let mut sent = run(&s, &mut accepted, 0, Duration::from_secs(62)).await;
    let back = s.meta.back_at().expect("Meta was down");
    let meta = accepted
        .drain(back, &s.meta.events_at())
        .expect("events were held");
    eprintln!("drain after Meta's 10-minute outage (1:10): {meta:?}");

    // GHL down for 3 minutes (18 s scaled).
    ghl.down_for(Duration::from_secs(18));
    sent += run(&s, &mut accepted, 1000, Duration::from_secs(20)).await;
    let back = ghl.back_at().expect("GHL was down");
    let ghl_drain = accepted
        .drain(back, &s.meta.events_at())
        .expect("events were held");
    eprintln!("drain after GHL's 3-minute outage (1:10): {ghl_drain:?}");

    assert!(meta <= MINUTE, "Meta's outage drained in {meta:?}");
    assert!(ghl_drain <= MINUTE, "GHL's outage drained in {ghl_drain:?}");
    // Nothing lost or sent twice: one Lead per webhook.
    let leads = s
        .meta
        .events()
        .iter()
        .filter(|e| e["event_name"] == "Lead")
        .count();
    assert_eq!(leads, sent);
}
