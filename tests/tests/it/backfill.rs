//! Backfill against a stand-in of GHL's contacts: the contacts created in a
//! period are sent as new contacts through the pipeline, once; those older than
//! Meta's 7 days are counted, not sent; `--rules` keeps the others' events back;
//! and a backfill cut off by GHL's outage, resumed, skips nothing and sends
//! nothing twice. Opportunities won in the period send their purchases, those
//! won more than 7 days ago are counted by rule, and the audiences that read
//! opportunities take them whatever their age.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::tokens::FixedTokens;
use ghl_capi::ghl::wire::LocationToken;
use ghl_capi::jobs::{DispatchJob, EnrichJob};
use ghl_capi::mapping::Mapping;
use ghl_capi::ports::queue::MemoryQueue;
use ghl_capi::ports::state::MemoryState;
use ghl_capi::pull::backfill::{Backfill, Progress, backfill, progress};
use ghl_capi::pull::listing::Patience;
use ghl_capi_tests::contacts_stand_in::{ContactsStandIn, Quirk};
use ghl_capi_tests::fixtures::{self, LOCATION, mapping};
use ghl_capi_tests::pipeline::{enrich_messages, enrich_outputs};
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
) -> Result<Progress, ghl_capi::pull::backfill::BackfillError> {
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

/// Opportunities of the contacts: five won two days ago, four won ten days ago
/// (all created 20 days ago), one created three days ago and still open, and one
/// won before the period.
fn deals(ghl: &ContactsStandIn) {
    let now = Utc::now();
    let days = |n| now - chrono::Duration::days(n);
    for i in 0..9 {
        let id = format!("o{i}");
        ghl.create_opportunity(&id, &format!("c{:03}", 200 + i), ("s1", "open"), days(20));
        let won = if i < 5 { days(2) } else { days(10) };
        ghl.move_opportunity(&id, ("s2", "won"), won);
    }
    ghl.create_opportunity("o-open", "c290", ("s1", "open"), days(3));
    ghl.create_opportunity("o-before", "early1", ("s1", "open"), days(60));
    ghl.move_opportunity("o-before", ("s2", "won"), days(40));
}

/// The opportunities queued, by id: how often, with events or for audiences.
fn deals_queued(queue: &MemoryQueue) -> BTreeMap<String, (usize, usize)> {
    let mut ids: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for message in queue.sent() {
        if let Ok(EnrichJob::Opportunity(job)) = serde_json::from_str(&message.body) {
            let counts = ids.entry(job.opportunity.id.clone()).or_default();
            match job.backfill.and_then(|b| b.rules) {
                Some(_) => counts.0 += 1,
                None => counts.1 += 1,
            }
        }
    }
    ids
}

#[tokio::test]
async fn opportunities_won_in_the_period_send_their_purchases_once_and_older_ones_are_counted() {
    let (ghl, _server, client) = ghl().await;
    deals(&ghl);
    let (mapping, state, queue) = (mapping(), MemoryState::default(), MemoryQueue::default());
    let all = plan(&mapping, &[], false, since());
    let done = run(&client, &state, &queue, &all)
        .await
        .expect("backfilled");
    let tally = &done.tally;
    assert_eq!(tally.opportunities, 10, "o-before lies outside: {tally:?}");
    assert_eq!(tally.opportunities_queued, 5, "{tally:?}");
    assert_eq!(tally.events["won"], 5);
    assert_eq!(tally.too_old["won"], 4, "won ten days ago");
    // No audience reads opportunities in this mapping: the old ones are not queued.
    let queued = deals_queued(&queue);
    let ids: Vec<&str> = queued.keys().map(String::as_str).collect();
    assert_eq!(ids, ["o0", "o1", "o2", "o3", "o4"]);
    assert!(queued.values().all(|&n| n == (1, 0)), "{queued:?}");

    let sent = enrich(&client, &state, &queue, &mapping).await;
    let purchases: Vec<&DispatchJob> = sent.iter().filter(|j| j.rule == "won").collect();
    assert_eq!(purchases.len(), 5);
    assert!(
        purchases
            .iter()
            .all(|j| j.event.custom_data.value == Some(250.0))
    );
    // Timed at the win, not at the backfill.
    let two_days = (Utc::now() - chrono::Duration::days(2)).timestamp();
    assert!(
        purchases
            .iter()
            .all(|j| (j.event.event_time - two_days).abs() < 60),
        "{:?}",
        purchases
            .iter()
            .map(|j| j.event.event_time)
            .collect::<Vec<_>>()
    );

    // Again: the same jobs and event ids, which enrichment has done already.
    let again = MemoryQueue::default();
    run(&client, &state, &again, &all).await.expect("again");
    let twice = enrich(&client, &state, &again, &mapping).await;
    assert!(twice.iter().all(|j| j.rule != "won"), "nothing twice");

    // `--rules lead`: the purchases are not its to send.
    let only = MemoryQueue::default();
    let leads = plan(&mapping, &["lead"], false, since());
    let done = run(&client, &MemoryState::default(), &only, &leads)
        .await
        .expect("backfilled");
    assert!(!done.tally.events.contains_key("won"), "{:?}", done.tally);
    assert!(deals_queued(&only).is_empty());
}

#[tokio::test]
async fn an_audience_reading_opportunities_takes_the_old_wins_too() {
    let (ghl, _server, client) = ghl().await;
    deals(&ghl);
    let text = fixtures::mapping_text() + &fixtures::audiences(r#"{ env = "ADS_TOKEN" }"#);
    let mapping = Mapping::parse(&text, "mapping.toml").expect("mapping");
    let (state, queue) = (MemoryState::default(), MemoryQueue::default());
    let done = run(
        &client,
        &state,
        &queue,
        &plan(&mapping, &[], false, since()),
    )
    .await
    .expect("backfilled");
    // The old wins, and the open one (its audiences learn it is not won).
    assert_eq!(
        done.tally.opportunities_for_audiences, 5,
        "{:?}",
        done.tally
    );
    let queued = deals_queued(&queue);
    for i in 0..9 {
        let want = if i < 5 { (1, 0) } else { (0, 1) };
        assert_eq!(queued[&format!("o{i}")], want, "o{i}: {queued:?}");
    }
    assert_eq!(queued["o-open"], (0, 1));
    // The audiences-only jobs send no event, letter none, and add the old wins'
    // contacts to the audience of won deals.
    let audiences_only: Vec<_> = queue
        .sent()
        .into_iter()
        .filter(|m| m.body.contains(":audiences"))
        .collect();
    let (sent, rows) = enrich_outputs(&mapping, &client, &state, &audiences_only).await;
    assert!(sent.is_empty(), "{sent:?}");
    let joined: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.audience == "won-deals" && r.add.is_some())
        .map(|r| r.contact_id.as_str())
        .collect();
    assert_eq!(joined, BTreeSet::from(["c205", "c206", "c207", "c208"]));
}

#[tokio::test]
async fn a_backfill_of_opportunities_cut_off_and_resumed_sends_each_purchase_once() {
    let (ghl, _server, client) = ghl().await;
    let two_days = Utc::now() - chrono::Duration::days(2);
    for i in 0..250 {
        let id = format!("o{i:03}");
        let at = two_days + chrono::Duration::seconds(i);
        ghl.create_opportunity(&id, &format!("c{:03}", i % 300), ("s2", "won"), at);
    }
    let (mapping, state, queue) = (mapping(), MemoryState::default(), MemoryQueue::default());
    let (rules, since) = (["won"], since());
    // The opportunity search goes down at its second page.
    ghl.quirk(Quirk::OpportunitiesDownFrom(2));
    let cut = run(
        &client,
        &state,
        &queue,
        &plan(&mapping, &rules, false, since),
    )
    .await;
    assert!(cut.is_err(), "the outage outlasts the listing's patience");
    let resumed = plan(&mapping, &rules, true, since);
    let stopped = progress(&state, LOCATION, &resumed)
        .await
        .expect("state")
        .expect("where it stopped");
    assert!(stopped.contacts_done && !stopped.done, "{stopped:?}");
    assert_eq!(stopped.tally.opportunities_queued, 100, "one page queued");
    assert!(stopped.opportunities_after.is_some());

    ghl.quirk(Quirk::None);
    let done = run(&client, &state, &queue, &resumed)
        .await
        .expect("resumed");
    assert!(done.done);
    assert_eq!(done.tally.opportunities_queued, 250);
    let queued = deals_queued(&queue);
    assert_eq!(queued.len(), 250);
    assert!(queued.values().all(|&n| n == (1, 0)), "each queued once");
    let sent = enrich(&client, &state, &queue, &mapping).await;
    let ids: BTreeSet<&str> = sent
        .iter()
        .filter(|j| j.rule == "won")
        .filter_map(|j| j.event.event_id.as_deref())
        .collect();
    assert_eq!(ids.len(), 250, "each purchase once");
}
