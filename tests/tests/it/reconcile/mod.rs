//! Reconciliation against a stand-in of GHL's contacts: a location's first run
//! takes the baseline and sends nothing; later runs queue exactly the changes no
//! webhook delivered, and enrichment sends each once; after full delivery nothing
//! is queued; a contact changed while a listing runs is listed, not skipped; and
//! the listing keeps to its share of GHL's budget ([`budget`]: and waits for what
//! real-time enrichment leaves of it).

mod budget;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::tokens::FixedTokens;
use ghl_capi::ghl::wire::LocationToken;
use ghl_capi::jobs::{DispatchJob, EnrichJob};
use ghl_capi::ports::queue::{MemoryQueue, Queue};
use ghl_capi::ports::state::{MemoryState, StateStore};
use ghl_capi::pull::listing::Patience;
use ghl_capi::pull::reconcile::{
    ReconcileError, ReconcileSettings, Reconciled, last_run, reconcile,
};
use ghl_capi_tests::contacts_stand_in::{ContactsStandIn, Quirk};
use ghl_capi_tests::fixtures::{LOCATION, mapping};
use ghl_capi_tests::pipeline::{enrich_messages, webhook_message};
use serde_json::json;
use wiremock::MockServer;

/// GHL's budget compressed: 100 requests a second, so a fifth is 20.
fn settings() -> ReconcileSettings {
    ReconcileSettings {
        share: 0.2,
        budget: (100, Duration::from_secs(1)),
        overlap: Duration::from_secs(60),
        patience: Patience {
            tries: 3,
            outage_wait: Duration::from_millis(5),
        },
        opportunities: false,
    }
}

fn ago(minutes: i64) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::minutes(minutes)
}

/// GHL, the state store and both queues, with the pipeline's enrichment.
struct World {
    ghl: ContactsStandIn,
    client: GhlClient<FixedTokens>,
    _server: MockServer,
    state: MemoryState,
    enrich: MemoryQueue,
    /// Enrichment messages handled so far.
    handled: usize,
}

/// GHL at `server` as a process new to it sees it: nothing known of its budget.
fn client(server: &MockServer) -> GhlClient<FixedTokens> {
    let tokens = HashMap::from([(LOCATION.to_owned(), LocationToken("pit".into()))]);
    GhlClient::new(&server.uri(), FixedTokens(tokens), Duration::from_secs(5)).expect("client")
}

impl World {
    /// A location whose `n` contacts were created (and last changed) hours ago.
    async fn new(n: usize) -> Self {
        let ghl = ContactsStandIn::new(LOCATION);
        for i in 0..n {
            let at = ago(600) + chrono::Duration::seconds(i as i64);
            ghl.create(&format!("c{i}"), &["lead"], at);
        }
        let server = MockServer::start().await;
        ghl.mount(&server).await;
        World {
            ghl,
            client: client(&server),
            _server: server,
            state: MemoryState::default(),
            enrich: MemoryQueue::default(),
            handled: 0,
        }
    }

    async fn reconcile(&self) -> Reconciled {
        self.reconcile_with(&settings()).await
    }

    async fn reconcile_with(&self, settings: &ReconcileSettings) -> Reconciled {
        let (ghl, state, queue) = (&self.client, &self.state, &self.enrich);
        reconcile(ghl, state, queue, LOCATION, settings, Utc::now())
            .await
            .expect("reconciled")
    }

    async fn try_reconcile(&self) -> Result<Reconciled, ReconcileError> {
        let (ghl, state, queue) = (&self.client, &self.state, &self.enrich);
        reconcile(ghl, state, queue, LOCATION, &settings(), Utc::now()).await
    }

    /// Enriches what was queued since the last call: the dispatch jobs it made.
    async fn enrich_queued(&mut self) -> Vec<DispatchJob> {
        let sent = self.enrich.sent();
        let fresh = &sent[self.handled..];
        self.handled = sent.len();
        enrich_messages(&mapping(), &self.client, &self.state, fresh).await
    }

    /// An opportunity webhook GHL delivered for `id` as the stand-in holds it now.
    async fn deliver_opportunity(&self, kind: &str, id: &str) {
        let mut body = self.ghl.opportunity(id);
        let contact = body["contactId"].as_str().unwrap_or_default().to_owned();
        body["dateAdded"] = body["createdAt"].clone();
        self.queue_webhook(kind, &contact, body).await;
    }

    /// A contact webhook GHL delivered for `id` as the stand-in holds it now.
    async fn deliver(&self, kind: &str, id: &str) {
        self.queue_webhook(kind, id, self.ghl.contact(id)).await;
    }

    /// `body` as GHL's webhook of `kind` about `contact`, queued for enrichment.
    async fn queue_webhook(&self, kind: &str, contact: &str, mut body: serde_json::Value) {
        let key = format!(
            "{LOCATION}:{contact}:{kind}:{}",
            body["id"].as_str().unwrap_or_default()
        );
        body["type"] = json!(kind);
        let message = webhook_message(key, body);
        self.enrich.send(message).await.expect("queued");
    }

    /// Contacts queued for enrichment by reconciliation, by id: how often.
    fn reconciled(&self) -> BTreeMap<String, usize> {
        let mut queued = BTreeMap::new();
        for message in self.enrich.sent() {
            if let Ok(EnrichJob::Listed(job)) = serde_json::from_str(&message.body) {
                *queued.entry(job.contact_id).or_default() += 1;
            }
        }
        queued
    }
}

/// The rule and contact of each event, sorted (every job's key here starts with
/// its location and contact).
fn events(jobs: &[DispatchJob]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = jobs
        .iter()
        .map(|j| {
            (
                j.rule.clone(),
                j.source.split(':').nth(1).unwrap_or_default().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn exactly_the_changes_no_webhook_delivered_are_sent_once() {
    let mut world = World::new(250).await;

    // The first run takes the baseline: every contact's tags, nothing sent.
    let first = world.reconcile().await;
    let seeded = first.seeded.as_ref().expect("a first run seeds");
    assert_eq!((seeded.listed, seeded.recorded), (250, 250));
    assert!(world.enrich.sent().is_empty(), "a baseline sends nothing");
    let tags = world.state.tags(LOCATION, "c7").await.expect("state");
    assert_eq!(tags, Some(vec!["lead".to_owned()]));

    // GHL's users at work: some changes come by webhook, some never do.
    let now = Utc::now();
    for id in ["c1", "c2", "c3"] {
        world.ghl.retag(id, &["lead", "vip"], now);
        world.deliver("ContactTagUpdate", id).await;
    }
    world.ghl.create("new-delivered", &["gold"], now);
    world.deliver("ContactCreate", "new-delivered").await;
    for id in ["c10", "c11", "c200"] {
        world.ghl.retag(id, &["lead", "vip"], now);
    }
    world.ghl.retag("c20", &[], now);
    world.ghl.create("new-missed", &["gold"], now);
    let delivered = world.enrich_queued().await;
    assert_eq!(
        events(&delivered),
        [
            ("lead".into(), "new-delivered".into()),
            ("vip".into(), "c1".into()),
            ("vip".into(), "c2".into()),
            ("vip".into(), "c3".into()),
            ("vip".into(), "new-delivered".into()),
        ]
    );

    // The next run finds only what no webhook told.
    let second = world.reconcile().await;
    assert_eq!(second.changed, 5, "{second:?}");
    assert!(second.seeded.is_none());
    let queued: BTreeSet<String> = world.reconciled().into_keys().collect();
    let expected = ["c10", "c11", "c20", "c200", "new-missed"];
    assert_eq!(queued, expected.iter().map(|s| (*s).to_owned()).collect());
    let missed = world.enrich_queued().await;
    assert_eq!(
        events(&missed),
        [
            ("lead".into(), "new-missed".into()),
            ("vip".into(), "c10".into()),
            ("vip".into(), "c11".into()),
            ("vip".into(), "c200".into()),
            ("vip".into(), "new-missed".into()),
        ],
        "each missed change once: a removed tag no rule reads sends nothing"
    );
    let ids: BTreeSet<&str> = missed
        .iter()
        .filter_map(|j| j.event.event_id.as_deref())
        .collect();
    assert_eq!(ids.len(), missed.len(), "every event id differs");

    // Everything is in step now: the next run queues nothing, and sends nothing.
    let third = world.reconcile().await;
    assert_eq!((third.changed, third.baselined), (0, 0), "{third:?}");
    assert!(world.enrich_queued().await.is_empty());
    assert!(third.watermark >= second.at, "the watermark moves on");
}

#[tokio::test]
async fn after_full_delivery_reconciliation_queues_and_sends_nothing() {
    let mut world = World::new(120).await;
    world.reconcile().await;
    let now = Utc::now();
    for i in 0..40 {
        let id = format!("c{i}");
        world.ghl.retag(&id, &["lead", "vip"], now);
        world.deliver("ContactTagUpdate", &id).await;
    }
    world.ghl.create("fresh", &["vip"], now);
    world.deliver("ContactCreate", "fresh").await;
    assert_eq!(
        world.enrich_queued().await.len(),
        42,
        "40 tags, a lead and its tag"
    );

    let run = world.reconcile().await;
    assert_eq!(run.scanned, 41, "the changed contacts are listed");
    assert_eq!((run.changed, run.baselined), (0, 0));
    assert!(world.reconciled().is_empty());
    assert!(
        world.enrich_queued().await.is_empty(),
        "0 events, 0 audience rows"
    );
}

#[tokio::test]
async fn a_contact_changed_while_the_listing_runs_is_listed_not_skipped() {
    let mut world = World::new(0).await;
    world.reconcile().await;
    // 350 contacts changed since, none by webhook; while the listing runs, a user
    // changes one already listed, which moves it to the end of the order.
    let since = Utc::now() - chrono::Duration::seconds(10);
    for i in 0..350 {
        let at = since + chrono::Duration::milliseconds(i);
        world.ghl.create(&format!("n{i}"), &["lead"], at);
    }
    // (Search 1 was the baseline's.)
    world.ghl.retag_after_search(2, "n5", &["lead", "vip"]);
    world.ghl.retag_after_search(3, "n150", &["lead", "gold"]);
    let run = world.reconcile().await;

    let queued = world.reconciled();
    assert_eq!(queued.len(), 350, "no contact skipped");
    assert_eq!(
        (queued["n5"], queued["n150"]),
        (2, 2),
        "as it was, and as changed"
    );
    assert!(
        queued
            .iter()
            .filter(|(id, _)| *id != "n5" && *id != "n150")
            .all(|(_, n)| *n == 1)
    );
    let events = world.enrich_queued().await;
    let vip: Vec<_> = events.iter().filter(|j| j.rule == "vip").collect();
    assert_eq!(vip.len(), 2, "n5's vip and n150's gold, once each");
    assert_eq!(run.changed, 352);
    let kept = last_run(&world.state, LOCATION)
        .await
        .expect("state")
        .expect("kept");
    assert_eq!(kept, run);
}

#[tokio::test]
async fn the_listing_keeps_to_its_share_of_ghls_budget() {
    let world = World::new(900).await;
    world.reconcile().await;
    let searches = world.ghl.searches();
    assert_eq!(searches.len(), 9, "nine pages of 100");
    // 20 % of 100 a second: never more than 20 in any second.
    for (i, (at, _)) in searches.iter().enumerate() {
        let within = searches[i..]
            .iter()
            .take_while(|(t, _)| t.duration_since(*at) < Duration::from_secs(1))
            .count();
        assert!(within <= 20, "{within} requests within a second");
    }
    // Asked 50 ms apart. The stand-in sees each request after its transit (the
    // first one's also opens the connection), which a loaded machine stretches by
    // milliseconds: each gap is held to half the pace, and the eight gaps together
    // to their sum less one pace. Unpaced, they would be a millisecond or two.
    for pair in searches.windows(2) {
        let gap = pair[1].0.duration_since(pair[0].0);
        assert!(
            gap >= Duration::from_millis(25),
            "{gap:?} between two requests"
        );
    }
    let span = searches[8].0.duration_since(searches[0].0);
    assert!(
        span >= Duration::from_millis(350),
        "{span:?} for nine requests"
    );
}

/// Whatever GHL's search does with the filter and the sort (both documented only
/// second-hand), the missed changes are found, once.
#[tokio::test]
async fn a_search_that_refuses_the_filter_or_ignores_the_sort_still_finds_them() {
    for quirk in [Quirk::RefusesFilters, Quirk::Unsorted] {
        let mut world = World::new(230).await;
        world.reconcile().await;
        world.ghl.quirk(quirk);
        let now = Utc::now();
        // More than a page: the unsorted one goes on by page.
        for i in 40..190 {
            let at = now - chrono::Duration::milliseconds(200 - i);
            world.ghl.retag(&format!("c{i}"), &["lead", "vip"], at);
        }
        let run = world.reconcile().await;
        assert_eq!(run.changed, 150, "{quirk:?}: {run:?}");
        let searches = world.ghl.searches();
        let last = &searches[searches.len() - 1].1;
        match quirk {
            Quirk::Unsorted => assert_eq!(last["page"], 2, "on by page, under the same filter"),
            _ => assert!(last.get("filters").is_none(), "every contact, unfiltered"),
        }
        let sent = world.enrich_queued().await;
        assert_eq!(sent.len(), 150, "{quirk:?}");
        let again = world.reconcile().await;
        assert_eq!(again.changed, 0, "{quirk:?}");
        assert!(
            again.watermark >= run.at,
            "{quirk:?}: the watermark moves on once complete"
        );
    }
}

/// With a mapping that reads opportunities, a status change no webhook delivered
/// sends its rule's event once, with the id its webhook would have given it; a
/// delivered one, a stage change no rule reads and a new open opportunity send
/// nothing more.
#[tokio::test]
async fn an_opportunity_won_without_a_webhook_sends_its_purchase_once() {
    let mut world = World::new(120).await;
    let long_ago = Utc::now() - chrono::Duration::days(40);
    for i in 0..120 {
        let (id, contact) = (format!("o{i}"), format!("c{i}"));
        world
            .ghl
            .create_opportunity(&id, &contact, ("s1", "open"), long_ago);
    }
    let with = ReconcileSettings {
        opportunities: true,
        ..settings()
    };
    let first = world.reconcile_with(&with).await;
    assert_eq!((first.opportunities, first.changed), (120, 0), "{first:?}");
    assert!(world.enrich.sent().is_empty(), "a baseline sends nothing");

    let now = Utc::now();
    world.ghl.move_opportunity("o1", ("s1", "won"), now);
    world
        .deliver_opportunity("OpportunityStatusUpdate", "o1")
        .await;
    assert_eq!(by_rule(&world.enrich_queued().await), ["won"]);
    world.ghl.move_opportunity("o2", ("s1", "won"), now);
    world.ghl.move_opportunity("o3", ("s2", "open"), now);
    world
        .ghl
        .create_opportunity("o-new", "c7", ("s1", "open"), now);

    let run = world.reconcile_with(&with).await;
    assert_eq!(run.changed, 3, "o2, o3 and o-new: {run:?}");
    let sent = world.enrich_queued().await;
    assert_eq!(by_rule(&sent), ["won"], "o2's purchase only");
    assert_eq!(sent[0].event.custom_data.value, Some(250.0));
    assert_eq!(world.reconcile_with(&with).await.changed, 0, "in step now");

    // o2's webhook, late: the same event id, which Meta takes once.
    world
        .deliver_opportunity("OpportunityStatusUpdate", "o2")
        .await;
    let late = world.enrich_queued().await;
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].event.event_id, sent[0].event.event_id);
}

fn by_rule(jobs: &[DispatchJob]) -> Vec<&str> {
    jobs.iter().map(|j| j.rule.as_str()).collect()
}

/// GHL down in the middle of a listing, then the queue refusing a page: each run
/// fails (logged and counted by the library), the watermark stays where the queued
/// pages left it, and the next run lists again from there: every change is found,
/// and sent once.
#[tokio::test]
async fn a_run_cut_off_by_ghl_or_the_queue_skips_nothing() {
    let mut world = World::new(0).await;
    world.reconcile().await;
    let start = last_run(&world.state, LOCATION)
        .await
        .expect("state")
        .expect("run");
    // Created after the baseline, each a millisecond after the last, all in the past.
    let since = start.watermark + chrono::Duration::milliseconds(1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..250 {
        let at = since + chrono::Duration::milliseconds(i);
        world.ghl.create(&format!("n{i:03}"), &["lead"], at);
    }
    // Search 1 was the baseline's; pages 2 and 3 come, then GHL is down.
    world.ghl.quirk(Quirk::DownFrom(4));
    assert!(
        world.try_reconcile().await.is_err(),
        "the outage outlasts the listing's patience"
    );
    let kept = last_run(&world.state, LOCATION)
        .await
        .expect("state")
        .expect("run");
    assert!(kept.watermark > start.watermark, "two pages were queued");
    assert!(kept.watermark < since + chrono::Duration::milliseconds(250));
    world.ghl.quirk(Quirk::None);

    world.enrich.fail_next(1);
    assert!(
        world.try_reconcile().await.is_err(),
        "the queue refused the first page"
    );
    let after = last_run(&world.state, LOCATION)
        .await
        .expect("state")
        .expect("run");
    assert_eq!(
        after.watermark, kept.watermark,
        "nothing queued, nothing advanced"
    );

    world
        .try_reconcile()
        .await
        .expect("GHL and the queue are back");
    let queued: BTreeSet<String> = world.reconciled().into_keys().collect();
    assert_eq!(queued.len(), 250, "no contact skipped");
    let sent = world.enrich_queued().await;
    let leads: BTreeSet<&str> = sent
        .iter()
        .filter(|j| j.rule == "lead")
        .filter_map(|j| j.event.event_id.as_deref())
        .collect();
    assert_eq!(
        (leads.len(), sent.len()),
        (250, 250),
        "each new contact's lead once"
    );
}
