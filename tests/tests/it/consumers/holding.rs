//! Work held through a partner's trouble, over simulated hours and days: nothing an
//! outage touches is dead-lettered, a paused partner is probed once per interval,
//! and what is held at last becomes a letter that says why.

use chrono::{DateTime, Duration as Span, Utc};
use ghl_capi::batch::Retry;
use ghl_capi::ghl::GhlError;
use ghl_capi::hold::HELD_TOO_LONG;
use ghl_capi::hold::breaker::OPEN_AFTER;
use ghl_capi::jobs::{DispatchJob, Stage};
use ghl_capi::ports::queue::Record;
use ghl_capi_tests::fakes::{FakeGhl, FakeMeta};

use super::{MAX_RECEIVES, Stages, dispatch_record, ghl, letters, now, queued, record};

/// The dispatch queue in simulated time: jobs the consumer queued again come back
/// as records once their delay has passed.
struct Clock<'s> {
    stages: &'s Stages,
    at: DateTime<Utc>,
    /// Messages of `stages.source` already turned into records.
    taken: usize,
    waiting: Vec<(DateTime<Utc>, Record)>,
}

impl<'s> Clock<'s> {
    fn new(stages: &'s Stages, records: Vec<Record>) -> Self {
        let at = now();
        Clock {
            stages,
            at,
            taken: 0,
            waiting: records.into_iter().map(|r| (at, r)).collect(),
        }
    }

    /// Moves on to the next time anything is ready; what is ready then.
    fn next(&mut self) -> Option<Vec<Record>> {
        let sent = self.stages.source.sent();
        for (n, message) in sent.iter().enumerate().skip(self.taken) {
            let delay = Span::from_std(message.delay.unwrap_or_default()).expect("delay");
            let record = Record::new(format!("m{n}"), message.body.clone());
            self.waiting.push((self.at + delay, record));
        }
        self.taken = sent.len();
        let soonest = self.waiting.iter().map(|(ready, _)| *ready).min()?;
        self.at = self.at.max(soonest);
        let (ready, later) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(ready, _)| *ready <= self.at);
        self.waiting = later;
        Some(ready.into_iter().map(|(_, r)| r).collect())
    }
}

fn leads(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| dispatch_record(&format!("e{i}"), "Lead", "main", "2026-11-20T18:00:00Z"))
        .collect()
}

/// What a Meta outage of `length` did to 50 held events, in simulated time with
/// the default hold: Meta's requests during it, the batches (returns of held
/// events), and how long after Meta's return the last event reached it.
struct Outage {
    requests: usize,
    batches: usize,
    drained: Span,
}

async fn meta_down_for(stages: &Stages, length: Span) -> Outage {
    let meta = FakeMeta::answering(503, "<html>");
    let outage_ends = now() + length;
    let mut clock = Clock::new(stages, leads(50));
    let (mut requests, mut batches, mut last_sent) = (0, 0, now());
    while let Some(batch) = clock.next() {
        if clock.at >= outage_ends {
            meta.set_answer(None);
        }
        let before = (meta.requests().len(), meta.delivered().len());
        let failed: Vec<Retry> = stages.send_at(&meta, &batch, clock.at).await;
        assert!(failed.is_empty(), "held by requeueing: {failed:?}");
        if clock.at < outage_ends {
            requests += meta.requests().len() - before.0;
        }
        if meta.delivered().len() > before.1 {
            last_sent = clock.at;
        }
        batches += 1;
        assert!(
            clock.at < outage_ends + Span::hours(1),
            "still held an hour after the outage"
        );
    }
    assert!(
        stages.dead.sent().is_empty(),
        "an outage is never a dead letter"
    );
    let mut delivered = meta.delivered();
    delivered.sort();
    let mut expected: Vec<String> = (0..50).map(|i| format!("e{i}")).collect();
    expected.sort();
    assert_eq!(delivered, expected, "each event once");
    Outage {
        requests,
        batches,
        drained: last_sent - outage_ends,
    }
}

#[tokio::test]
async fn a_meta_outage_of_hours_is_held_probed_once_per_interval_and_then_sent_once() {
    let stages = Stages::default();
    let two_hours = meta_down_for(&stages, Span::hours(2)).await;
    // The held events came back again and again; Meta was asked about once per
    // probe interval (at most 15 s apart), not once per return.
    let Outage {
        requests,
        batches,
        drained,
    } = two_hours;
    assert!(batches > requests, "{batches} returns, {requests} requests");
    assert!(
        (400..=650).contains(&requests),
        "{requests} requests in a two-hour outage"
    );
    // The last held event waited at most a twentieth of its two hours, after the
    // probe that found Meta back.
    assert!(drained <= Span::seconds(15 + 360), "drained in {drained}");
    let held: Vec<DispatchJob> = queued(&stages.source);
    let last = held.last().expect("held jobs");
    assert_eq!(last.history.last_code.as_deref(), Some("meta_unavailable"));
    assert!(
        last.history
            .last_cause
            .as_deref()
            .unwrap_or_default()
            .contains("503"),
        "{:?}",
        last.history
    );
}

#[tokio::test]
async fn after_a_ten_minute_meta_outage_every_held_event_is_sent_within_a_minute() {
    let Outage { drained, .. } = meta_down_for(&Stages::default(), Span::minutes(10)).await;
    // The probe within 15 s of Meta's return, then a last wait of at most 30 s.
    assert!(drained <= Span::seconds(45), "drained in {drained}");
    assert!(drained > Span::zero(), "sent once Meta was back");
}

#[tokio::test]
async fn a_refusal_of_the_whole_request_holds_the_batch_in_one_request_without_splitting() {
    for error in [
        r#"{"error":{"code":100,"error_subcode":33,"message":"Unsupported post request"}}"#,
        r#"{"error":{"code":10,"message":"Application does not have permission"}}"#,
        r#"{"error":{"code":200,"message":"Permissions error"}}"#,
        r#"{"error":{"code":190,"error_subcode":463,"message":"Session has expired"}}"#,
    ] {
        let stages = Stages::default();
        let meta = FakeMeta::answering(400, error);
        let records = leads(1000);
        assert!(stages.send(&meta, &records).await.is_empty());
        assert_eq!(meta.sizes(), [1000], "{error}: one request, never split");
        let held = queued(&stages.source);
        assert_eq!(held.len(), 1000, "{error}");
        assert!(
            held.iter()
                .all(|j| j.history.last_code.as_deref() == Some("meta_request_refused")),
            "{error}"
        );
        assert!(
            stages.dead.sent().is_empty(),
            "{error}: a person fixes this; nothing is lost"
        );
        // Refused again and again, the pixel is paused: what comes back before
        // the probe asks Meta nothing.
        for _ in 1..OPEN_AFTER {
            assert!(stages.send(&meta, &records[..10]).await.is_empty());
        }
        let asked = meta.sizes().len();
        assert_eq!(asked, OPEN_AFTER as usize, "{error}");
        assert!(stages.send(&meta, &records[..10]).await.is_empty());
        assert_eq!(meta.sizes().len(), asked, "{error}");
    }
}

#[tokio::test]
async fn a_location_without_a_ghl_token_is_held_for_days_then_lettered_saying_so() {
    let stages = Stages::default();
    let ghl = FakeGhl::failing(GhlError::NoToken {
        what: "location loc".into(),
    });
    let start = now();
    let mut job = record("w1", "ContactCreate", "c1", &["vip"]);
    job.first_received = Some(start);
    for (receives, at) in [(1, start), (300, start + Span::days(3))] {
        job.receives = receives;
        let failed = stages.run_at(&ghl, std::slice::from_ref(&job), at).await;
        assert_eq!(failed.len(), 1, "held on day {}", (at - start).num_days());
        assert_eq!(failed[0].reason.code, "ghl_no_token");
        assert!(failed[0].after.is_some());
        assert!(stages.dead.sent().is_empty());
    }
    job.receives = 650;
    let at = start + Span::days(7) + Span::minutes(1);
    assert!(stages.run_at(&ghl, &[job], at).await.is_empty());
    let [letter] = letters(&stages).try_into().expect("one letter");
    let l = letter.dead_letter;
    assert_eq!(
        (l.code.as_str(), l.source.as_str(), l.stage),
        (HELD_TOO_LONG, "w1", Some(Stage::Enrich))
    );
    assert_eq!(l.triggers, ["contact.created", "contact.tag_added:vip"]);
    assert!(
        l.reason.contains("no GHL token is stored for location loc") && l.reason.contains("7 d"),
        "{}",
        l.reason
    );
    assert_eq!(l.history.first_failure, Some(start));
    assert_eq!(l.history.last_failure, Some(at));
    assert!(l.history.attempts >= 650, "{:?}", l.history);
    assert_eq!(l.at, Some(at));
}

#[tokio::test]
async fn a_job_at_the_queues_receive_limit_is_lettered_with_its_last_cause_first() {
    let stages = Stages::default();
    let ghl = FakeGhl::failing(GhlError::unavailable(
        "GET /contacts/c1",
        "GHL answered 502",
    ));
    let mut job = record("w1", "ContactCreate", "c1", &[]);
    job.receives = MAX_RECEIVES - 1;
    assert!(stages.run(&ghl, &[job]).await.is_empty());
    let [letter] = letters(&stages).try_into().expect("one letter");
    let l = letter.dead_letter;
    assert_eq!((l.code.as_str(), l.source.as_str()), (HELD_TOO_LONG, "w1"));
    assert!(
        l.reason.contains("999 times") && l.reason.contains("502"),
        "{}",
        l.reason
    );
    assert_eq!(l.history.last_code.as_deref(), Some("ghl_unavailable"));
}

#[tokio::test]
async fn later_changes_of_a_held_contact_wait_unhandled_and_are_never_lettered() {
    let stages = Stages::default();
    let ghl = ghl();
    ghl.set_failing_for(
        "c1",
        Some(GhlError::RateLimited {
            retry_after_ms: 2_000,
        }),
    );
    let mut batch = [
        record("w1", "ContactCreate", "c1", &[]),
        record("w2", "ContactTagUpdate", "c1", &["vip"]),
        record("w3", "ContactCreate", "c2", &[]),
    ];
    let mut at = now();
    // Far more rounds than a small receive limit (SQS's default redrive is 5).
    for round in 1..=20 {
        for r in &mut batch[..2] {
            r.receives = round;
        }
        let failed = stages.run_at(&ghl, &batch, at).await;
        let held: Vec<(&str, &str)> = failed
            .iter()
            .map(|r| (r.message_id.as_str(), r.reason.code))
            .collect();
        assert_eq!(
            held,
            [
                ("m-w1", "ghl_rate_limited"),
                ("m-w2", "waiting_for_earlier_change")
            ]
        );
        assert_eq!(
            failed[0].after, failed[1].after,
            "the later change waits as long"
        );
        at += Span::seconds(3);
    }
    assert!(
        stages.dead.sent().is_empty(),
        "a neighbour's trouble is not its own"
    );
    ghl.set_failing_for("c1", None);
    assert!(stages.run_at(&ghl, &batch[..2], at).await.is_empty());
    let names: Vec<(String, String)> = queued(&stages.dispatch)
        .into_iter()
        .map(|j| (j.source, j.event.event_name))
        .collect();
    assert_eq!(
        names,
        [
            ("w3".to_owned(), "Lead".to_owned()),
            ("w1".to_owned(), "Lead".to_owned()),
            ("w2".to_owned(), "CompleteRegistration".to_owned())
        ],
        "in the contact's order, each once"
    );
}
