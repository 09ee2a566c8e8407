//! The scheduled reconciliation over moto, as the template wires it: a
//! location's first run takes its baseline; the next queues what no webhook
//! delivered, and the pipeline sends it once; every AWS call it makes is one its
//! role allows. An install's announcement on the connect queue seeds its
//! location at once.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use ghl_capi::ghl::install::Connected;
use ghl_capi::pull::reconcile::last_run;
use ghl_capi::pull::seed::seeded;
use ghl_capi::settings::ReconcileFnSettings;
use ghl_capi_aws::lambda::Reconciliation;
use ghl_capi_tests::contacts_stand_in::{ContactsStandIn, Limits};
use ghl_capi_tests::fixtures::LOCATION;

use crate::iam::{Calls, allowed};
use crate::stack::Stack;
use crate::template::template;

#[tokio::test]
async fn the_scheduled_run_sends_what_no_webhook_delivered_with_only_its_roles_rights() {
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let (s, ghl) = with_leads(120).await;
    let (function, calls) = reconciliation(&s).await;
    let deadline = || Instant::now() + Duration::from_secs(600);

    let first = function.handle(deadline()).await.expect("baseline");
    assert_eq!(first["locations"], 1, "{first}");
    assert_eq!(first["changed"], 0, "{first}");
    assert_eq!(
        s.pending(&s.enrich_url).await,
        0,
        "a baseline sends nothing"
    );

    ghl.retag("c7", &["lead", "vip"], chrono::Utc::now());
    let second = function.handle(deadline()).await.expect("run");
    assert_eq!(second["changed"], 1, "{second}");
    s.drain().await;
    let names: Vec<String> = s
        .meta
        .events()
        .iter()
        .filter_map(|e| e["event_name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(names, ["CompleteRegistration"]);
    // A fresh process: it lists the locations left to mint by the group index
    // alone; the one-time indexing of older records is not repeated.
    let (fresh, again) = reconciliation(&s).await;
    let third = fresh.handle(deadline()).await.expect("run");
    assert_eq!(third["changed"], 0, "{third}");
    let actions: BTreeSet<String> = again.seen().into_iter().map(|(a, _)| a).collect();
    assert!(actions.contains("dynamodb:Query"), "{actions:?}");
    assert!(
        !actions.contains("dynamodb:Scan"),
        "no scan of the table: {actions:?}"
    );

    // Too near its deadline, a run starts no location.
    let late = function
        .handle(Instant::now() + Duration::from_secs(5))
        .await
        .expect("run");
    assert_eq!(late["reconciled"], 0, "{late}");

    only_its_roles_rights(&s, &calls);
    let seen = calls.seen();

    let actions: BTreeSet<&str> = seen.iter().map(|(a, _)| a.as_str()).collect();
    for expected in [
        "secretsmanager:ListSecrets",
        "secretsmanager:GetSecretValue",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "sqs:SendMessage",
    ] {
        assert!(
            actions.contains(expected),
            "never called {expected}: {actions:?}"
        );
    }
}

/// An SQS event of the connect queue with these bodies.
fn announcements(bodies: &[&str]) -> SqsEvent {
    let mut event = SqsEvent::default();
    for (i, body) in bodies.iter().enumerate() {
        let mut message = SqsMessage::default();
        message.message_id = Some(format!("m{i}"));
        message.body = Some((*body).to_owned());
        event.records.push(message);
    }
    event
}

#[tokio::test]
async fn an_installs_announcement_seeds_its_location_at_once() {
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let (s, _ghl) = with_leads(30).await;
    let vars = &s.vars;
    let settings = ReconcileFnSettings::from_lookup(|n| vars.get(n).cloned()).expect("settings");
    let sdk = ghl_capi_tests::moto::sdk_config().await;
    let function = Reconciliation::new(settings, &sdk)
        .await
        .expect("reconciliation");
    assert!(
        seeded(&function.state, LOCATION)
            .await
            .expect("read")
            .is_none()
    );

    let announced = serde_json::to_string(&Connected {
        connected: LOCATION.into(),
    })
    .expect("json");
    let event = announcements(&[&announced, "not an announcement"]);
    let answer = function
        .connected(&event, Instant::now() + Duration::from_secs(600))
        .await;
    // Both taken: the garbled one is only a hint lost (scheduled runs seed too).
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    let baseline = seeded(&function.state, LOCATION)
        .await
        .expect("read")
        .expect("seeded at once");
    assert_eq!((baseline.listed, baseline.recorded), (30, 30));
    assert!(
        last_run(&function.state, LOCATION)
            .await
            .expect("read")
            .is_some()
    );
    assert_eq!(
        s.pending(&s.enrich_url).await,
        0,
        "a baseline sends nothing"
    );

    // With too little time left, the announcements come back for the next call.
    let late = function
        .connected(&event, Instant::now() + Duration::from_secs(5))
        .await;
    let back: Vec<&str> = late
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(back, ["m0", "m1"]);
}

#[tokio::test]
async fn an_announcement_whose_seed_never_finished_waits_for_a_person_not_the_queues_count() {
    use ghl_capi::ports::state::StateStore;
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let s = Stack::with("", &[]).await;
    let ghl = ContactsStandIn::new(LOCATION);
    ghl.create(
        "c1",
        &["lead"],
        chrono::Utc::now() - chrono::Duration::days(3),
    );
    ghl.mount(&s.ghl).await;
    let parked =
        ghl_capi_tests::moto::queue(&s.sqs, &ghl_capi_tests::unique("connect-dead"), None).await;
    let mut vars = s.vars.clone();
    vars.insert("CONNECT_DEAD_LETTER_QUEUE_URL", parked.clone());
    let settings = ReconcileFnSettings::from_lookup(|n| vars.get(n).cloned()).expect("settings");
    let sdk = ghl_capi_tests::moto::sdk_config().await;
    let function = Reconciliation::new(settings, &sdk)
        .await
        .expect("reconciliation");
    let announced = serde_json::to_string(&Connected {
        connected: LOCATION.into(),
    })
    .expect("json");
    // Its seed started three times, and the function's time ran out each time:
    // parked for a person. Started never (however often the queue handed it out
    // while runs were throttled): seeded.
    for (tries, parked_now, seeded_now) in [("3", 1, false), ("0", 0, true)] {
        let hour = Duration::from_secs(3600);
        let key = format!("seeding#{LOCATION}");
        let counted = function.state.set_record(&key, tries, hour);
        counted.await.expect("counted");
        let deadline = Instant::now() + Duration::from_secs(600);
        let answer = function
            .connected(&announcements(&[&announced]), deadline)
            .await;
        assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
        let seeded_yet = seeded(&function.state, LOCATION).await.expect("read");
        assert_eq!(seeded_yet.is_some(), seeded_now, "{tries} tries before");
        let waiting = ghl_capi_tests::moto::receive(&s.sqs, &parked).await;
        assert_eq!(waiting.len(), parked_now, "{tries} tries before");
        if let Some(message) = waiting.first() {
            assert_eq!(message.body(), Some(announced.as_str()));
        }
    }
}

#[tokio::test]
async fn an_audience_mirrored_on_the_schedule_is_replaced_once_due_with_only_its_roles_rights() {
    use ghl_capi_tests::audience_stand_in::AudienceStandIn;
    use ghl_capi_tests::fixtures::VIP_AUDIENCE;

    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let mirrored = format!(
        "\n[[audiences]]\nname = \"vips\"\naudience_id = \"{VIP_AUDIENCE}\"\n\
         access_token = {{ secret = \"{{stack}}/meta/ads\" }}\ntags = [\"vip\"]\nmirror_every = \"1d\"\n"
    );
    let s = Stack::with(&mirrored, &[]).await;
    ghl_capi_tests::moto::secret(&s.secrets, &format!("{}/meta/ads", s.id), "EAAB-ads").await;
    let meta = AudienceStandIn::expecting_token("EAAB-ads");
    meta.mount(&s.graph, VIP_AUDIENCE).await;
    let ghl = ContactsStandIn::new(LOCATION);
    let long_ago = chrono::Utc::now() - chrono::Duration::days(3);
    for i in 0..10 {
        let tags: &[&str] = if i % 2 == 0 { &["vip"] } else { &["lead"] };
        ghl.create(&format!("c{i}"), tags, long_ago);
    }
    ghl.mount(&s.ghl).await;
    let (function, calls) = reconciliation(&s).await;
    let deadline = || Instant::now() + Duration::from_secs(600);

    let first = function.handle(deadline()).await.expect("run");
    assert_eq!(first["mirrored"], serde_json::json!(["vips"]), "{first}");
    assert_eq!(meta.members(VIP_AUDIENCE).len(), 5);
    assert_eq!(meta.sessions().len(), 1);
    assert_eq!(meta.breaches(), Vec::<String>::new());
    let second = function.handle(deadline()).await.expect("run");
    assert_eq!(
        second["mirrored"],
        serde_json::json!([]),
        "not due for a day: {second}"
    );
    assert_eq!(meta.sessions().len(), 1);

    only_its_roles_rights(&s, &calls);
}

/// A location whose GHL day is down to enrichment's share: the scheduled run stops
/// after the page GHL's answer told it so, sends nothing, fails nothing (no
/// function error, so no alarm); a process that hears of a new day takes the
/// baseline whole.
#[tokio::test]
async fn a_run_waiting_for_ghls_budget_is_no_failure_and_goes_on_next_time() {
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let (s, ghl) = with_leads(150).await;
    let limits = |day_left| Limits {
        per_window: 100,
        window: Duration::from_secs(10),
        per_day: 200_000,
        day_left,
    };
    // 30,000 of the day left: enrichment's share (160,000) is more than that.
    ghl.limit(limits(30_000));
    let deadline = || Instant::now() + Duration::from_secs(600);
    let (function, _) = reconciliation(&s).await;
    let run = function.handle(deadline()).await.expect("no failure");
    assert_eq!(
        (&run["waited"], &run["reconciled"]),
        (&1.into(), &0.into()),
        "{run}"
    );
    assert_eq!(
        ghl.searches().len(),
        1,
        "the first page told it; no second asked"
    );
    let baseline = seeded(&function.state, LOCATION).await.expect("read");
    assert!(baseline.is_none(), "no baseline yet");
    assert_eq!(s.pending(&s.enrich_url).await, 0);

    ghl.limit(limits(200_000));
    let (fresh, _) = reconciliation(&s).await;
    let run = fresh.handle(deadline()).await.expect("run");
    assert_eq!(
        (&run["waited"], &run["reconciled"]),
        (&0.into(), &1.into()),
        "{run}"
    );
    let baseline = seeded(&fresh.state, LOCATION).await.expect("read");
    assert_eq!(baseline.expect("taken").listed, 150, "the baseline, whole");
}

/// The stack, and GHL holding `n` leads (`c0`, `c1`, …) created days ago.
async fn with_leads(n: usize) -> (Stack, ContactsStandIn) {
    let s = Stack::with("", &[]).await;
    let ghl = ContactsStandIn::new(LOCATION);
    let long_ago = chrono::Utc::now() - chrono::Duration::days(3);
    for i in 0..n {
        ghl.create(&format!("c{i}"), &["lead"], long_ago);
    }
    ghl.mount(&s.ghl).await;
    (s, ghl)
}

/// The function as `s` configures it, its AWS calls recorded.
pub(crate) async fn reconciliation(s: &Stack) -> (Reconciliation, Calls) {
    let vars = &s.vars;
    let settings = ReconcileFnSettings::from_lookup(|n| vars.get(n).cloned()).expect("settings");
    let calls = Calls::default();
    let sdk = ghl_capi_tests::moto::sdk_config().await;
    let function = Reconciliation::new(settings, &calls.recording(&sdk))
        .await
        .expect("reconciliation");
    (function, calls)
}

/// Every AWS call in `calls` (and every key it wrote) is one the function's role
/// allows.
fn only_its_roles_rights(s: &Stack, calls: &Calls) {
    let t = template();
    for (action, resource) in calls.seen() {
        assert!(
            allowed(&t, s, "ReconcileFunction", &action, &resource),
            "ReconcileFunction calls {action} on {resource}, which its role does not allow"
        );
    }
    for (action, resource, key) in calls.keys() {
        assert!(
            crate::iam::allowed_key(&t, s, "ReconcileFunction", &action, &resource, Some(&key)),
            "ReconcileFunction calls {action} on {resource} for key {key}, which its role does not allow"
        );
    }
}
