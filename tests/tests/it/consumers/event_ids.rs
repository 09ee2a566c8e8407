//! Events that share an id: Meta keeps one event per dataset, name and id, so two
//! events with one id and two names are two events (both go), one event delivered
//! twice is one (it goes once), and two owners' events with one name and id cannot
//! both be kept by Meta (the second is lettered, never silently dropped).

use ghl_capi::jobs::{ConversionJob, EnrichJob, PostedConversion};
use ghl_capi::mapping::Mapping;
use ghl_capi::ports::queue::Record;
use ghl_capi_tests::fakes::FakeMeta;

use super::{Stages, ghl, letters, now};

/// Two rules on one posted conversion: a Purchase always, and a custom
/// HighValuePurchase above 100.
pub(crate) fn two_rules() -> Mapping {
    Mapping::parse(
        r#"
version = 1
[defaults]
currency = "USD"
[[pixels]]
name = "main"
dataset_id = "1234567890"
access_token = { env = "META_TOKEN" }
[[rules]]
name = "purchase"
trigger = "conversion.posted"
event_name = "Purchase"
value = { field = "conversion.value" }
[[rules]]
name = "high-value"
trigger = "conversion.posted"
event_name = "HighValuePurchase"
value = { field = "conversion.value" }
[[rules.when]]
field = "conversion.value"
greater_than = 100
"#,
        "two rules",
    )
    .expect("mapping")
}

/// A conversion `contact` posted with the caller's `event_id`, as a queued record.
fn posted(message: &str, contact: &str, event_id: &str) -> Record {
    let conversion = PostedConversion {
        location_id: "loc".into(),
        event_type: "purchase".into(),
        timestamp: "2026-11-20T23:00:00Z".into(),
        value: Some(250.0),
        currency: Some("USD".into()),
        event_id: Some(event_id.into()),
        custom_data: Default::default(),
    };
    let job = EnrichJob::Conversion(ConversionJob::new(contact, now(), event_id, conversion));
    let mut record = Record::new(message, serde_json::to_string(&job).expect("json"));
    record.group_id = Some(format!("loc:{contact}"));
    record
}

/// Enriches `records`, then dispatches what they queued, each dispatch message
/// `copies` times (a redelivery), in one batch: the letters written.
async fn through(stages: &Stages, meta: &FakeMeta, records: &[Record], copies: usize) {
    let mapping = two_rules();
    let failed = stages.enrich_with(&mapping, &ghl(), records, now()).await;
    assert!(failed.is_empty(), "{failed:?}");
    let queued: Vec<Record> = stages
        .dispatch
        .take()
        .into_iter()
        .enumerate()
        .flat_map(|(i, m)| {
            (0..copies).map(move |copy| Record::new(format!("d{i}-{copy}"), m.body.clone()))
        })
        .collect();
    let failed = stages.send_with(&mapping, meta, &queued, now()).await;
    assert!(failed.is_empty(), "{failed:?}");
}

#[tokio::test]
async fn two_rules_firing_on_one_conversion_send_both_events_with_the_callers_id() {
    let (stages, meta) = (Stages::default(), FakeMeta::default());
    through(&stages, &meta, &[posted("m1", "c1", "order-1")], 2).await;
    let mut sent = meta.delivered_named();
    sent.sort();
    assert_eq!(
        sent,
        [
            ("HighValuePurchase".to_owned(), "order-1".to_owned()),
            ("Purchase".to_owned(), "order-1".to_owned()),
        ],
        "one id, two names: two events at Meta, each once however often delivered"
    );
    assert!(letters(&stages).is_empty());
}

#[tokio::test]
async fn two_contacts_posting_one_event_id_get_one_event_sent_and_the_other_lettered() {
    for together in [true, false] {
        let (stages, meta) = (Stages::default(), FakeMeta::default());
        let records = [posted("m1", "c1", "order-1"), posted("m2", "c2", "order-1")];
        if together {
            through(&stages, &meta, &records, 1).await;
        } else {
            // In two batches: the second finds Meta's mark of the first.
            through(&stages, &meta, &records[..1], 1).await;
            through(&stages, &meta, &records[1..], 1).await;
        }
        assert_eq!(meta.delivered_named().len(), 2, "c1's two events");
        let letters = letters(&stages);
        assert_eq!(letters.len(), 2, "c2's two events, lettered: {letters:?}");
        for letter in letters.iter().map(|l| &l.dead_letter) {
            assert_eq!(letter.code, "event_id_reused");
            assert_eq!(letter.event_id.as_deref(), Some("order-1"));
            assert!(
                letter.reason.contains("loc/c1/")
                    && letter.reason.contains("an event id of its own"),
                "names whose event holds the id, and the fix: {}",
                letter.reason
            );
        }
    }
}

/// One job of the property below: its pixel, contact, rule, event name and id.
type Job = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

/// The job as queued for dispatch; its source names the whole job, so Meta's
/// requests and the letters tell whose event each is.
fn dispatch_body((pixel, contact, rule, name, id): Job) -> String {
    serde_json::json!({"pixel": pixel, "source": format!("{pixel}|{contact}|{rule}|{name}|{id}"),
        "rule": rule, "location_id": "loc", "contact_id": contact,
        "event": {"event_name": name, "event_time": now().timestamp() - 60, "event_id": id,
            "action_source": "system_generated", "user_data": {"em": ["abc"]},
            "custom_data": {"content_name": format!("{pixel}|{contact}|{rule}|{name}|{id}")}}})
    .to_string()
}

fn dataset(pixel: &str) -> &'static str {
    if pixel == "main" { "1234567890" } else { "456" }
}

#[test]
fn every_event_is_sent_once_or_lettered_whatever_ids_it_shares_and_however_it_is_delivered() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use std::collections::{BTreeSet, HashMap};

    let job = (
        prop::sample::select(vec!["main", "second"]),
        prop::sample::select(vec!["c1", "c2"]),
        prop::sample::select(vec!["r1", "r2"]),
        prop::sample::select(vec!["Schedule", "Lead"]),
        prop::sample::select(vec!["order-1", "order-2"]),
    );
    // Jobs, how often each is delivered, the order of all deliveries, and where
    // the batches are cut.
    let case = prop::collection::vec((job, 1..=3usize), 1..10).prop_flat_map(|jobs| {
        let deliveries: usize = jobs.iter().map(|(_, n)| n).sum();
        (
            Just(jobs),
            Just((0..deliveries).collect::<Vec<_>>()).prop_shuffle(),
            prop::collection::vec(1..=4usize, deliveries),
        )
    });
    let mapping = ghl_capi_tests::fixtures::mapping();
    let mut runner = TestRunner::new(Config {
        cases: 128,
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = runner.run(&case, |(jobs, order, cuts)| {
        let copies: Vec<Job> = jobs
            .iter()
            .flat_map(|(job, n)| std::iter::repeat_n(*job, *n))
            .collect();
        let (stages, meta) = (Stages::default(), FakeMeta::default());
        let mut delivery = order.iter().enumerate().peekable();
        let mut cut = cuts.iter();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        while delivery.peek().is_some() {
            let size = *cut.next().unwrap_or(&1);
            let batch: Vec<Record> = delivery
                .by_ref()
                .take(size)
                .map(|(i, &n)| Record::new(format!("m{i}"), dispatch_body(copies[n])))
                .collect();
            let failed = runtime.block_on(stages.send_with(&mapping, &meta, &batch, now()));
            prop_assert!(failed.is_empty(), "{failed:?}");
        }
        // What Meta acknowledged, by dataset, name and id, and whose event it was.
        let mut sent: HashMap<(String, String, String), Vec<String>> = HashMap::new();
        for (dataset, request) in meta.delivered_requests() {
            for event in request.data {
                let owner = event.custom_data.content_name.unwrap_or_default();
                sent.entry((
                    dataset.clone(),
                    event.event_name,
                    event.event_id.unwrap_or_default(),
                ))
                .or_default()
                .push(owner);
            }
        }
        for ((_, name, id), owners) in &sent {
            prop_assert_eq!(
                owners.len(),
                1,
                "{} {} went to Meta twice: {:?}",
                name,
                id,
                owners
            );
        }
        let letters = letters(&stages);
        for letter in &letters {
            prop_assert_eq!(&letter.dead_letter.code, "event_id_reused");
        }
        let lettered: BTreeSet<String> =
            letters.into_iter().map(|l| l.dead_letter.source).collect();
        for (job, _) in &jobs {
            let (pixel, _, _, name, id) = *job;
            let me = format!("{pixel}|{}|{}|{name}|{id}", job.1, job.2);
            let key = (dataset(pixel).to_owned(), name.to_owned(), id.to_owned());
            let holder = sent.get(&key).map(|owners| owners[0].as_str());
            if holder == Some(me.as_str()) {
                prop_assert!(!lettered.contains(&me), "{me} sent and lettered");
            } else {
                prop_assert!(holder.is_some(), "{me}: neither sent nor lettered");
                prop_assert!(lettered.contains(&me), "{me} dropped without a letter");
            }
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}
