//! One batch at a time: what each record becomes.

use std::time::Duration;

use ghl_capi::capi::score::{Key, Score};
use ghl_capi::ghl::{Contact, GhlError};
use ghl_capi::hold::breaker::OPEN_AFTER;
use ghl_capi::jobs::DispatchJob;
use ghl_capi::ports::queue::Record;
use ghl_capi::ports::state::StateStore;
use ghl_capi_tests::failing_writes::FailingWrites;
use ghl_capi_tests::fakes::{FakeGhl, FakeMeta};
use ghl_capi_tests::fixtures::mapping;
use serde_json::Value;

use super::{Stages, contact_json, dispatch_record, ghl, ids, letters, now, queued, record};

#[tokio::test]
async fn changes_to_one_contact_in_one_batch_see_each_other() {
    let stage = Stages::default();
    let records = [
        record("w1", "ContactCreate", "c1", &["vip"]),
        record("w2", "ContactTagUpdate", "c1", &["vip", "gold"]),
    ];
    let failed = stage.run(&ghl(), &records).await;
    assert!(failed.is_empty());
    let names: Vec<(String, Option<String>)> = queued(&stage.dispatch)
        .into_iter()
        .map(|j| (j.event.event_name, j.event.custom_data.content_name))
        .collect();
    assert_eq!(
        names,
        [
            ("Lead".into(), None),
            ("CompleteRegistration".into(), Some("vip".into())),
            ("CompleteRegistration".into(), Some("gold".into())),
        ],
        "tag vip once, on creation; tag gold once, on its update"
    );
}

#[tokio::test]
async fn a_failed_send_retries_the_record_its_group_and_forgets_nothing() {
    let stage = Stages::default();
    stage.dispatch.fail_next(1);
    let records = [
        record("w1", "ContactCreate", "c1", &["vip"]),
        record("w2", "ContactTagUpdate", "c1", &["vip", "gold"]),
        record("w3", "ContactCreate", "c2", &[]),
    ];
    let failed = stage.run(&ghl(), &records).await;
    assert_eq!(
        ids(&failed),
        ["m-w1", "m-w2"],
        "c1's later change waits for its first; c2 goes on"
    );
    assert_eq!(queued(&stage.dispatch).len(), 1);

    // Redelivered, c1's creation still finds tag vip new: nothing was remembered.
    let failed = stage.run(&ghl(), &records[..2]).await;
    assert!(failed.is_empty());
    // The creation's Lead and tag vip, then tag gold: each exactly once.
    assert_eq!(queued(&stage.dispatch).len(), 1 + 3);
}

#[tokio::test]
async fn a_failed_send_of_a_batch_holds_every_job_waiting_on_it_and_forgets_nothing() {
    let stage = Stages::default();
    stage.dispatch.fail_next(1);
    // Three contacts (GHL no longer has c3): their outputs wait for one send.
    let records = [
        record("w1", "ContactCreate", "c1", &["vip"]),
        record("w2", "ContactCreate", "c2", &[]),
        record("w3", "ContactCreate", "c3", &[]),
    ];
    let failed = stage.run(&ghl(), &records).await;
    assert_eq!(ids(&failed), ["m-w1", "m-w2", "m-w3"], "all three held");
    assert!(queued(&stage.dispatch).is_empty());
    assert!(
        letters(&stage).is_empty(),
        "c3's letter waits with the rest"
    );

    // Redelivered, each finds its tags new and its job not done: every output once.
    let failed = stage.run(&ghl(), &records).await;
    assert!(failed.is_empty());
    let names: Vec<String> = (queued(&stage.dispatch).into_iter())
        .map(|j| j.event.event_name)
        .collect();
    assert_eq!(names, ["Lead", "CompleteRegistration", "Lead"]);
    let codes: Vec<String> = (letters(&stage).into_iter())
        .map(|l| l.dead_letter.code)
        .collect();
    assert_eq!(codes, ["contact_not_found"]);
}

#[tokio::test]
async fn a_table_refusing_writes_holds_each_job_and_its_retry_repeats_the_same_events() {
    let stage = Stages::default();
    let state = FailingWrites::default();
    state.fail(true);
    let records = [
        record("w1", "ContactCreate", "c1", &["vip"]),
        record("w2", "ContactCreate", "c2", &[]),
    ];
    let (mapping, ghl) = (mapping(), ghl());
    let run = || stage.enrich_over(&state, &mapping, &ghl, &records, now());
    let failed = run().await;
    assert_eq!(
        ids(&failed),
        ["m-w1", "m-w2"],
        "held: their tags and marks unwritten"
    );
    let first: Vec<String> = (queued(&stage.dispatch).iter())
        .map(|j| j.event.event_id.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        first.len(),
        3,
        "their outputs went before the table refused"
    );

    // The table is back: the retry queues the same events (the same ids, which
    // dispatch takes once) and is done.
    state.fail(false);
    assert!(run().await.is_empty());
    let again: Vec<String> = (queued(&stage.dispatch).iter().skip(3))
        .map(|j| j.event.event_id.clone().unwrap_or_default())
        .collect();
    assert_eq!(again, first);
    assert!(run().await.is_empty());
    assert_eq!(queued(&stage.dispatch).len(), 6, "then done: nothing more");
}

#[tokio::test]
async fn a_job_redelivered_after_it_was_done_produces_nothing_more() {
    let stage = Stages::default();
    let first = [record("w1", "ContactCreate", "c1", &[])];
    // The same webhook, queued again past SQS's deduplication window: a new message id.
    let mut again = first[0].clone();
    again.message_id = "m-w1-later".into();
    let ghl = ghl();
    let mut reads = Vec::new();
    for records in [&first[..], &[again][..]] {
        let failed = stage.run(&ghl, records).await;
        assert!(failed.is_empty());
        reads.push(ghl.reads().len());
    }
    assert_eq!(queued(&stage.dispatch).len(), 1, "one Lead, not two");
    assert_eq!(reads[0], reads[1], "GHL is not asked again: {reads:?}");
    // Its mark was written with the contact's tags, in one write, not apart.
    let state = &stage.state;
    assert!(state.contact("loc", "c1", "w1").await.expect("read").done);
    assert!(!state.processed("w1").await.expect("read"));
}

#[tokio::test]
async fn a_ghl_rate_limit_retries_the_record_after_ghls_interval() {
    let stage = Stages::default();
    let limited = FakeGhl::failing(GhlError::RateLimited {
        retry_after_ms: 7_500,
    });
    let records = [
        record("w1", "ContactCreate", "c1", &[]),
        record("w2", "ContactTagUpdate", "c1", &["vip"]),
    ];
    let failed = stage.run(&limited, &records).await;
    let waits: Vec<(&str, Option<std::time::Duration>, &str)> = failed
        .iter()
        .map(|r| (r.message_id.as_str(), r.after, r.reason.code))
        .collect();
    assert_eq!(
        waits,
        [
            (
                "m-w1",
                Some(std::time::Duration::from_millis(7_500)),
                "ghl_rate_limited"
            ),
            // The contact's later change waits as long as the earlier one, unhandled.
            (
                "m-w2",
                Some(std::time::Duration::from_millis(7_500)),
                "waiting_for_earlier_change"
            ),
        ]
    );
    assert!(stage.dispatch.sent().is_empty() && stage.dead.sent().is_empty());
}

#[tokio::test]
async fn a_malformed_record_is_dead_lettered_alone() {
    let stage = Stages::default();
    let records = [
        {
            let mut bad = Record::new("m-bad", "{not json");
            bad.group_id = Some("loc:c9".into());
            bad
        },
        record("w1", "ContactCreate", "c1", &[]),
    ];
    let failed = stage.run(&ghl(), &records).await;
    assert!(failed.is_empty());
    let letter: Value = serde_json::from_str(&stage.dead.sent()[0].body).expect("json");
    assert_eq!(letter["deadLetter"]["code"], "malformed_message");
    assert_eq!(letter["message"], "{not json");
    assert_eq!(queued(&stage.dispatch).len(), 1);
}

/// A webhook kept whole that this build cannot read as one: the consumer's look
/// for its mark reads it as no contact's, and the build letters it with the parse
/// error, left open for a redrive; the batch's other job goes on.
#[tokio::test]
async fn a_kept_webhook_that_does_not_parse_is_lettered_and_left_open() {
    let stage = Stages::default();
    let mut bad = record("w-bad", "ContactCreate", "c9", &[]);
    let job = serde_json::json!({"type": "ContactCreate", "locationId": "loc",
        "webhookId": "w-bad", "timestamp": "2026-11-20T23:00:00Z"});
    let job = ghl_capi::jobs::EnrichJob::Webhook {
        key: "w-bad".into(),
        received_at: now(),
        body: job.to_string(),
    };
    bad.body = serde_json::to_string(&job).expect("json");
    let records = [bad, record("w1", "ContactCreate", "c1", &[])];
    assert!(stage.run(&ghl(), &records).await.is_empty());
    let codes: Vec<String> = letters(&stage)
        .iter()
        .map(|l| l.dead_letter.code.clone())
        .collect();
    assert_eq!(codes, ["malformed_webhook"]);
    assert!(!stage.state.processed("w-bad").await.expect("read"));
    assert_eq!(queued(&stage.dispatch).len(), 1, "w1's Lead");
}

#[tokio::test]
async fn dispatch_delivers_the_good_and_dead_letters_each_bad_event_with_its_reason() {
    let (meta, stages) = (FakeMeta::default(), Stages::default());
    let records = [
        dispatch_record("e1", "Lead", "main", "2026-11-20T12:00:00Z"),
        dispatch_record("e2", "Bad", "main", "2026-11-20T12:00:00Z"),
        dispatch_record("e3", "Lead", "main", "2026-11-01T12:00:00Z"),
        dispatch_record("e4", "Lead", "gone", "2026-11-20T12:00:00Z"),
        dispatch_record("e5", "Lead", "main", "2026-11-20T12:00:00Z"),
    ];
    let failed = stages.send(&meta, &records).await;
    assert!(failed.is_empty(), "{failed:?}");
    let codes: Vec<(String, String)> = stages
        .dead
        .sent()
        .iter()
        .map(|m| {
            let v: Value = serde_json::from_str(&m.body).expect("json");
            (
                v["deadLetter"]["source"].as_str().unwrap_or("").into(),
                v["deadLetter"]["code"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            ("e3".into(), "too_old".into()),
            ("e4".into(), "unknown_pixel".into()),
            ("e2".into(), "refused_by_meta".into())
        ]
    );
}

#[tokio::test]
async fn token_trouble_and_outages_hold_every_event_with_its_history_and_pause_the_pixel() {
    let records = [
        dispatch_record("e1", "Lead", "main", "2026-11-20T12:00:00Z"),
        dispatch_record("e2", "Lead", "main", "2026-11-20T12:00:00Z"),
    ];
    for (answer, code) in [
        (
            (400, r#"{"error":{"code":190,"message":"expired"}}"#),
            "meta_request_refused",
        ),
        ((503, "<html>"), "meta_unavailable"),
    ] {
        let stages = Stages::default();
        let meta = FakeMeta::answering(answer.0, answer.1);
        let failed = stages.send(&meta, &records).await;
        assert!(failed.is_empty(), "held by requeueing: {failed:?}");
        assert_eq!(
            meta.requests(),
            [("1234567890".to_owned(), 2)],
            "one request for the pixel's events"
        );
        let held: Vec<DispatchJob> = queued(&stages.source);
        assert_eq!(held.len(), 2);
        for job in &held {
            assert_eq!(job.history.attempts, 1);
            assert_eq!(job.history.last_code.as_deref(), Some(code));
            assert_eq!(job.history.first_failure, Some(now()));
        }
        let waits: Vec<Option<Duration>> = stages.source.sent().iter().map(|m| m.delay).collect();
        assert!(
            waits
                .iter()
                .all(|w| w.is_some_and(|w| w >= Duration::from_millis(1_500))),
            "{waits:?}"
        );
        // Failing again and again, the pixel is paused: the held events come back,
        // and Meta is not asked.
        let again = |n: usize| -> Vec<Record> {
            stages.source.sent()[n..]
                .iter()
                .map(|m| Record::new("m-again", m.body.clone()))
                .collect()
        };
        for round in 1..OPEN_AFTER as usize {
            assert!(stages.send(&meta, &again(2 * (round - 1))).await.is_empty());
        }
        assert_eq!(meta.requests().len(), OPEN_AFTER as usize);
        let held_before = stages.source.sent().len();
        assert!(stages.send(&meta, &again(held_before - 2)).await.is_empty());
        assert_eq!(
            meta.requests().len(),
            OPEN_AFTER as usize,
            "no request while paused"
        );
        let paused: Vec<DispatchJob> = queued(&stages.source)[held_before..].to_vec();
        assert!(
            paused.iter().all(|j| j.history.attempts == OPEN_AFTER + 1),
            "{paused:?}"
        );
        assert!(stages.dead.sent().is_empty(), "nothing dropped");
    }
}

#[tokio::test]
async fn an_event_delivered_twice_in_one_batch_is_sent_once() {
    let (meta, stages) = (FakeMeta::default(), Stages::default());
    let first = dispatch_record("e1", "Lead", "main", "2026-11-20T12:00:00Z");
    let mut copy = first.clone();
    copy.message_id = "m-e1-again".into();
    let failed = stages.send(&meta, &[first, copy]).await;
    assert!(failed.is_empty(), "both copies are done with");
    assert_eq!(meta.delivered(), ["e1"]);
}

#[tokio::test]
async fn an_event_meta_took_is_not_sent_again_when_its_job_comes_twice() {
    let (meta, stages) = (FakeMeta::default(), Stages::default());
    let job = dispatch_record("e1", "Lead", "main", "2026-11-20T12:00:00Z");
    // Queued again later (an enrichment retried after its jobs were queued, or a
    // redelivery): a new message for the same event.
    let mut again = job.clone();
    again.message_id = "m-e1-requeued".into();
    for record in [job, again] {
        assert!(stages.send(&meta, &[record]).await.is_empty());
    }
    assert_eq!(meta.delivered(), ["e1"], "Meta got it once");
}

#[tokio::test]
async fn a_request_too_large_for_meta_is_split_and_the_pixel_never_held() {
    let (meta, stages) = (FakeMeta::default(), Stages::default());
    meta.too_large_over(3);
    let records: Vec<Record> = (0..8)
        .map(|i| dispatch_record(&format!("e{i}"), "Lead", "main", "2026-11-20T12:00:00Z"))
        .collect();
    let failed = stages.send(&meta, &records).await;
    assert!(failed.is_empty(), "{failed:?}");
    let mut sent = meta.delivered();
    sent.sort();
    assert_eq!(sent.len(), 8, "every event, in smaller requests: {sent:?}");
    assert!(stages.source.sent().is_empty(), "nothing held");
    assert!(stages.dead.sent().is_empty(), "nothing lettered");
    assert!(
        meta.sizes().iter().any(|n| *n > 3),
        "the first try was whole"
    );
}

#[tokio::test]
async fn the_events_meta_took_are_counted_with_their_coverage_and_the_rest_are_not() {
    let (meta, stages) = (FakeMeta::default(), Stages::default());
    let records = [
        dispatch_record("e1", "Lead", "main", "2026-11-20T12:00:00Z"),
        dispatch_record("e2", "Bad", "main", "2026-11-20T12:00:00Z"),
        dispatch_record("e3", "Lead", "main", "2026-11-20T12:00:00Z"),
    ];
    assert!(stages.send(&meta, &records).await.is_empty());
    let day = now().date_naive();
    let days = ghl_capi::quality::read(&stages.state, "1234567890", day, day)
        .await
        .expect("read");
    let counted = &days[0].1;
    assert_eq!(
        counted.keys().collect::<Vec<_>>(),
        ["Lead"],
        "Meta refused Bad"
    );
    let lead = &counted["Lead"];
    // The fixture's pixel sends with a test event code: readiness leaves them out.
    assert_eq!((lead.sent, lead.test), (2, 2));
    assert_eq!(lead.has.get(&Key::Email), Some(&2));
    assert_eq!(lead.score(), Score(Key::Email.weight()));
    assert_eq!(lead.lacking(Key::Phone), 100);

    // Held through an outage, nothing is counted.
    let (down, held) = (FakeMeta::answering(503, "<html>"), Stages::default());
    assert!(held.send(&down, &records[..1]).await.is_empty());
    let days = ghl_capi::quality::read(&held.state, "1234567890", day, day)
        .await
        .expect("read");
    assert!(days[0].1.is_empty(), "{days:?}");
}

#[tokio::test]
async fn a_batch_reads_its_contacts_side_by_side_each_once() {
    let stage = Stages::default();
    let ids: Vec<String> = (1..=10).map(|n| format!("c{n}")).collect();
    let contacts: Vec<Contact> = (ids.iter())
        .map(|id| serde_json::from_value(contact_json(id, &[])).expect("contact"))
        .collect();
    let ghl = FakeGhl::with(&contacts);
    // Ten new contacts, then the first one's next change (a wave of its own).
    let mut records: Vec<Record> = (ids.iter())
        .map(|id| record(&format!("w-{id}"), "ContactCreate", id, &[]))
        .collect();
    records.push(record("w-again", "ContactUpdate", "c1", &[]));
    assert!(stage.run(&ghl, &records).await.is_empty());
    assert_eq!(ghl.most_at_once(), 10, "ten reads waited for together");
    let mut read = ghl.reads();
    read.sort();
    let mut each_once: Vec<String> = ids.iter().map(|id| format!("contact {id}")).collect();
    each_once.sort();
    assert_eq!(read, each_once, "c1's second change reads the batch's read");
    let leads = queued(&stage.dispatch);
    assert_eq!(leads.len(), 10, "one Lead a contact: {leads:?}");
}

#[tokio::test]
async fn a_location_whose_breaker_saw_a_failure_is_read_one_contact_at_a_time() {
    let stage = Stages::default();
    let ghl = ghl();
    ghl.set_failing(Some(GhlError::unavailable(
        "GET /contacts/c1",
        "GHL answered 502",
    )));
    let first = [record("w1", "ContactCreate", "c1", &[])];
    assert_eq!(ids(&stage.run(&ghl, &first).await), ["m-w1"], "held");
    ghl.set_failing(None);
    ghl.most_at_once();

    // GHL may still be down: the next batch probes it with one read at a time.
    let records = [
        record("w1", "ContactCreate", "c1", &[]),
        record("w2", "ContactCreate", "c2", &[]),
    ];
    assert!(stage.run(&ghl, &records).await.is_empty());
    assert_eq!(ghl.most_at_once(), 1);
    assert_eq!(queued(&stage.dispatch).len(), 2);

    // GHL answered, so the breaker closed: side by side again.
    let records = [
        record("w3", "ContactCreate", "c1", &[]),
        record("w4", "ContactCreate", "c2", &[]),
    ];
    assert!(stage.run(&ghl, &records).await.is_empty());
    assert_eq!(ghl.most_at_once(), 2);
}

#[tokio::test]
async fn a_job_run_again_before_its_mark_is_seen_sends_meta_nothing_new() {
    // The job's mark is read eventually consistent: a redelivery may miss it.
    let (meta, stage) = (FakeMeta::default(), Stages::default());
    let state = FailingWrites::default();
    state.marks_unseen(true);
    let records = [
        record("w1", "ContactCreate", "c1", &["vip"]),
        record("w2", "ContactTagUpdate", "c1", &["vip", "gold"]),
    ];
    let (mapping, ghl) = (mapping(), ghl());
    for _ in 0..2 {
        let failed = stage
            .enrich_over(&state, &mapping, &ghl, &records, now())
            .await;
        assert!(failed.is_empty());
    }
    let again: Vec<Record> = (stage.dispatch.sent().iter())
        .map(|m| Record::new("m-queued", m.body.clone()))
        .collect();
    assert!(again.len() > 3, "the second run queued its events again");
    assert!(stage.send(&meta, &again).await.is_empty());
    let sent = meta.delivered();
    let distinct: std::collections::HashSet<&String> = sent.iter().collect();
    assert_eq!(
        (sent.len(), distinct.len()),
        (3, 3),
        "Lead, vip and gold, each once: {sent:?}"
    );
    let tags = state.inner.tags("loc", "c1").await.expect("read");
    assert_eq!(tags, Some(vec!["vip".to_owned(), "gold".to_owned()]));
}

#[tokio::test]
async fn a_table_failing_to_read_the_jobs_marks_holds_them_and_asks_ghl_nothing() {
    let stage = Stages::default();
    let state = FailingWrites::default();
    state.fail_mark_reads(true);
    let records = [
        record("w1", "ContactCreate", "c1", &[]),
        record("w2", "ContactCreate", "c2", &[]),
    ];
    let (mapping, ghl) = (mapping(), ghl());
    let failed = stage
        .enrich_over(&state, &mapping, &ghl, &records, now())
        .await;
    assert_eq!(ids(&failed), ["m-w1", "m-w2"], "both held");
    assert!(failed.iter().all(|r| r.reason.code == "state_store_failed"));
    assert!(
        ghl.reads().is_empty(),
        "GHL not asked for a job not known new"
    );
    assert!(queued(&stage.dispatch).is_empty());
    assert!(letters(&stage).is_empty(), "nothing lettered");

    state.fail_mark_reads(false);
    let failed = stage
        .enrich_over(&state, &mapping, &ghl, &records, now())
        .await;
    assert!(failed.is_empty());
    assert_eq!(queued(&stage.dispatch).len(), 2, "each Lead once");
}
