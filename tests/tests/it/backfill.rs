//! Backfill against a stand-in of GHL's contacts: the contacts created in a
//! period are sent as new contacts through the pipeline, once; those older than
//! Meta's 7 days are counted, not sent; `--rules` keeps the others' events back;
//! and a backfill cut off by GHL's outage, resumed, skips nothing and sends
//! nothing twice.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::tokens::FixedTokens;
use ghl_capi::ghl::wire::LocationToken;
use ghl_capi::jobs::{DispatchJob, EnrichJob};
use ghl_capi::mapping::Mapping;
use ghl_capi::ops::backfill::{Backfill, Progress, backfill, progress};
use ghl_capi::ops::listing::Patience;
use ghl_capi::ports::queue::MemoryQueue;
use ghl_capi::ports::state::MemoryState;
use ghl_capi_tests::contacts_stand_in::{ContactsStandIn, Quirk};
use ghl_capi_tests::fixtures::{LOCATION, mapping};
use ghl_capi_tests::pipeline::enrich_messages;
use wiremock::MockServer;

/// 300 contacts, one every hour from 300 hours ago, each tagged `vip` (every
/// third) or `lead`; and 20 created before the period.
async fn ghl() -> (ContactsStandIn, MockServer, GhlClient<FixedTokens>) {
    let ghl = ContactsStandIn::new(LOCATION);
    let now = Utc::now();
    for i in 0..20 {
        ghl.create(
            &format!("early{i}"),
            &["lead"],
            now - chrono::Duration::days(60),
        );
    }
    for i in 0..300 {
        let tags: &[&str] = if i % 3 == 0 { &["vip"] } else { &["lead"] };
        // Half an hour off the hour, so none is on Meta's 7-day edge.
        let at = now - chrono::Duration::hours(300 - i) + chrono::Duration::minutes(30);
        ghl.create(&format!("c{i:03}"), tags, at);
    }
    let server = MockServer::start().await;
    ghl.mount(&server).await;
    let tokens = HashMap::from([(LOCATION.to_owned(), LocationToken("pit".into()))]);
    let client =
        GhlClient::new(&server.uri(), FixedTokens(tokens), Duration::from_secs(5)).expect("client");
    (ghl, server, client)
}

/// The period: the last 30 days.
fn since() -> DateTime<Utc> {
    Utc::now() - chrono::Duration::days(30)
}

fn plan<'m>(
    mapping: &'m Mapping,
    rules: &[&str],
    resume: bool,
    since: DateTime<Utc>,
) -> Backfill<'m> {
    Backfill {
        mapping,
        rules: rules.iter().map(|r| (*r).to_owned()).collect(),
        since,
        until: None,
        resume,
        pace: Duration::ZERO,
        patience: Patience {
            tries: 2,
            outage_wait: Duration::from_millis(5),
        },
    }
}

async fn run(
    client: &GhlClient<FixedTokens>,
    state: &MemoryState,
    queue: &MemoryQueue,
    plan: &Backfill<'_>,
) -> Result<Progress, ghl_capi::ops::backfill::BackfillError> {
    backfill(
        client,
        state,
        Some(queue),
        LOCATION,
        plan,
        Utc::now(),
        &mut |_, _, _| {},
    )
    .await
}

/// Enriches everything `queue` holds: the dispatch jobs made.
async fn enrich(
    client: &GhlClient<FixedTokens>,
    state: &MemoryState,
    queue: &MemoryQueue,
    mapping: &Mapping,
) -> Vec<DispatchJob> {
    enrich_messages(mapping, client, state, &queue.sent()).await
}

fn by_rule(jobs: &[DispatchJob]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for job in jobs {
        *counts.entry(job.rule.clone()).or_default() += 1;
    }
    counts
}

/// The contacts queued, by id: how often.
fn queued(queue: &MemoryQueue) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for message in queue.sent() {
        if let Ok(EnrichJob::Listed(job)) = serde_json::from_str(&message.body) {
            *ids.entry(job.contact_id).or_default() += 1;
        }
    }
    ids
}

#[tokio::test]
async fn the_periods_recent_contacts_are_sent_once_and_older_ones_counted() {
    let (_ghl, _server, client) = ghl().await;
    let (mapping, state, queue) = (mapping(), MemoryState::default(), MemoryQueue::default());
    let plan = plan(&mapping, &[], false, since());
    let done = run(&client, &state, &queue, &plan)
        .await
        .expect("backfilled");

    // Within 7 days: the last 168 hours' contacts (c132 on), each a lead or a vip.
    let tally = &done.tally;
    assert_eq!(tally.listed, 300, "the earlier 20 lie outside the period");
    let fresh = queued(&queue);
    assert!(fresh.keys().all(|id| id.as_str() >= "c132"), "{fresh:?}");
    assert_eq!((tally.queued, fresh.len()), (168, 168));
    assert_eq!(
        tally.too_old["lead"] + tally.events["lead"],
        300,
        "a lead per contact"
    );
    assert_eq!(
        tally.too_old["vip"] + tally.events["vip"],
        100,
        "a vip per third"
    );
    assert!(done.done);

    let sent = enrich(&client, &state, &queue, &mapping).await;
    let counts = by_rule(&sent);
    assert_eq!(counts["lead"] as u64, tally.events["lead"]);
    assert_eq!(counts["vip"] as u64, tally.events["vip"]);
    let ids: BTreeSet<&str> = sent
        .iter()
        .filter_map(|j| j.event.event_id.as_deref())
        .collect();
    assert_eq!(ids.len(), sent.len(), "each event once");

    // Run again: the same jobs (same keys), which enrichment has done already.
    let again = MemoryQueue::default();
    run(&client, &state, &again, &plan).await.expect("again");
    assert!(
        enrich(&client, &state, &again, &mapping).await.is_empty(),
        "nothing twice"
    );
}

#[tokio::test]
async fn rules_not_named_send_nothing() {
    let (_ghl, _server, client) = ghl().await;
    let (mapping, state, queue) = (mapping(), MemoryState::default(), MemoryQueue::default());
    let plan = plan(&mapping, &["vip"], false, since());
    let done = run(&client, &state, &queue, &plan)
        .await
        .expect("backfilled");
    assert!(!done.tally.events.contains_key("lead"), "{:?}", done.tally);
    let sent = enrich(&client, &state, &queue, &mapping).await;
    assert_eq!(by_rule(&sent).keys().collect::<Vec<_>>(), ["vip"]);
    assert_eq!(sent.len() as u64, done.tally.events["vip"]);
}

#[tokio::test]
async fn a_backfill_cut_off_and_resumed_sends_each_event_once() {
    let (ghl, _server, client) = ghl().await;
    let (mapping, state, queue) = (mapping(), MemoryState::default(), MemoryQueue::default());
    let since = since();
    // GHL goes down at the third page.
    ghl.quirk(Quirk::DownFrom(3));
    let cut = run(&client, &state, &queue, &plan(&mapping, &[], false, since)).await;
    assert!(cut.is_err(), "the outage outlasts the listing's patience");
    let stopped = progress(&state, LOCATION, &plan(&mapping, &[], false, since))
        .await
        .expect("state")
        .expect("where it stopped");
    // The second page starts at the first's last contact, listed once.
    assert_eq!(stopped.tally.listed, 199, "two pages queued");
    assert!(!stopped.done);

    ghl.quirk(Quirk::None);
    let resumed = run(&client, &state, &queue, &plan(&mapping, &[], true, since))
        .await
        .expect("resumed");
    assert!(resumed.done);
    assert_eq!(
        resumed.tally.listed, 300,
        "counted across both runs, once each"
    );
    let ids = queued(&queue);
    assert!(
        ids.values().all(|n| *n == 1),
        "no contact queued twice: {ids:?}"
    );
    assert_eq!(ids.len() as u64, resumed.tally.queued);

    let sent = enrich(&client, &state, &queue, &mapping).await;
    let events: BTreeSet<&str> = sent
        .iter()
        .filter_map(|j| j.event.event_id.as_deref())
        .collect();
    assert_eq!(events.len(), sent.len());
    assert_eq!(
        sent.len() as u64,
        resumed.tally.events.values().sum::<u64>()
    );
    // Resumed once it is done, there is nothing left to do.
    let after = MemoryQueue::default();
    run(&client, &state, &after, &plan(&mapping, &[], true, since))
        .await
        .expect("done");
    assert!(after.sent().is_empty());
}
