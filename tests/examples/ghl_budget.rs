//! How many events a location can send a day before GHL's budget binds, counted:
//! webhooks of N made-up leads go through enrichment (the real consumer and GHL
//! client) against the contacts stand-in, each in a batch of its own as they arrive
//! seconds apart, once with no contact read kept (as before the cache) and once as
//! built (reads kept `GHL_CONTACT_CACHE_SECONDS`). GHL calls per event come from the
//! stand-in's count; events a day = the day's budget enrichment may spend / calls
//! per event: all 200,000 before the governor (shared with whatever else called),
//! its share (80 %) after, the rest kept for reconciliation, backfill, names and
//! write-back. `bench/ghl-budget.sh` runs it.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use ghl_capi::ghl::budget::DEFAULT_SHARE;
use ghl_capi::ghl::client::{DEFAULT_CONTACT_CACHE, GhlClient};
use ghl_capi::ghl::tokens::FixedTokens;
use ghl_capi::ghl::wire::LocationToken;
use ghl_capi::mapping::Mapping;
use ghl_capi::ports::state::MemoryState;
use ghl_capi_tests::contacts_stand_in::{ContactsStandIn, stamp};
use ghl_capi_tests::fixtures::{LOCATION, mapping_with};
use ghl_capi_tests::pipeline::{enrich_messages, webhook_message};
use serde_json::{Value, json};
use wiremock::MockServer;

/// GHL's budget per location and day.
const DAY: f64 = 200_000.0;

/// Rules beside the fixture's (`lead` on a new contact, `vip` on a tag, `won`):
/// an opportunity and an appointment of a lead, each reading the contact.
const RULES: &str = r#"
[[rules]]
name = "opportunity"
trigger = "opportunity.created"
event_name = "SubmitApplication"

[[rules]]
name = "booked"
trigger = "appointment.booked"
event_name = "Schedule"
"#;

/// A workload: the webhooks of one lead, in the order GHL sends them.
struct Workload {
    name: &'static str,
    webhooks: fn(&ContactsStandIn, usize) -> Vec<Value>,
}

/// A new lead's first minutes: created, tagged by a workflow, an opportunity, an
/// appointment booked.
fn new_lead(ghl: &ContactsStandIn, n: usize) -> Vec<Value> {
    let (contact, opportunity) = (format!("lead{n}"), format!("opp{n}"));
    let now = Utc::now();
    ghl.create(&contact, &["lead"], now);
    ghl.create_opportunity(&opportunity, &contact, ("s1", "open"), now);
    let mut tagged = ghl.contact(&contact);
    tagged["tags"] = json!(["lead", "vip"]);
    vec![
        typed("ContactCreate", ghl.contact(&contact)),
        typed("ContactTagUpdate", tagged),
        typed("OpportunityCreate", ghl.opportunity(&opportunity)),
        typed(
            "AppointmentCreate",
            json!({"locationId": LOCATION, "appointment": {
                "id": format!("appt{n}"), "calendarId": "cal1", "contactId": contact,
                "appointmentStatus": "confirmed", "startTime": stamp(now),
                "dateAdded": stamp(now)}}),
        ),
    ]
}

/// A deal won days after the lead came in: one webhook.
fn won_later(ghl: &ContactsStandIn, n: usize) -> Vec<Value> {
    let (contact, opportunity) = (format!("buyer{n}"), format!("deal{n}"));
    let long_ago = Utc::now() - chrono::Duration::days(9);
    ghl.create(&contact, &["lead"], long_ago);
    ghl.create_opportunity(&opportunity, &contact, ("s1", "open"), long_ago);
    ghl.move_opportunity(&opportunity, ("s1", "won"), Utc::now());
    vec![typed(
        "OpportunityStatusUpdate",
        ghl.opportunity(&opportunity),
    )]
}

fn typed(kind: &str, mut body: Value) -> Value {
    body["type"] = json!(kind);
    body["locationId"] = json!(LOCATION);
    body
}

/// Events built and contact reads made for `leads` leads of `workload`.
async fn run(
    mapping: &Mapping,
    workload: &Workload,
    leads: usize,
    kept: Duration,
) -> (usize, usize) {
    let ghl = ContactsStandIn::new(LOCATION);
    let server = MockServer::start().await;
    ghl.mount(&server).await;
    let tokens = HashMap::from([(LOCATION.to_owned(), LocationToken("pit".into()))]);
    let client = GhlClient::new(&server.uri(), FixedTokens(tokens), Duration::from_secs(5))
        .expect("client")
        .with_contact_cache(kept);
    let state = MemoryState::default();
    let mut events = 0;
    for n in 0..leads {
        for (i, body) in (workload.webhooks)(&ghl, n).into_iter().enumerate() {
            let message = webhook_message(format!("{}-{n}-{i}", workload.name), body);
            events += enrich_messages(mapping, &client, &state, &[message])
                .await
                .len();
        }
    }
    (events, ghl.reads().len())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let leads: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(500);
    let mapping = mapping_with(RULES);
    let workloads = [
        Workload {
            name: "new lead (created, tagged, opportunity, appointment)",
            webhooks: new_lead,
        },
        Workload {
            name: "deal won days later",
            webhooks: won_later,
        },
    ];
    println!(
        "GHL budget per location and day: {DAY:.0} requests; enrichment's share after: {:.0} %",
        DEFAULT_SHARE * 100.0
    );
    println!(
        "contact reads kept after: {} s; {leads} leads per workload\n",
        DEFAULT_CONTACT_CACHE.as_secs()
    );
    println!(
        "| workload | events | GHL reads before | after | reads per event before | after | events per location per day before | after |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for workload in &workloads {
        let (events, before) = run(&mapping, workload, leads, Duration::ZERO).await;
        let (again, after) = run(&mapping, workload, leads, DEFAULT_CONTACT_CACHE).await;
        assert_eq!(events, again, "the same events either way");
        let per = |reads: usize| reads as f64 / events as f64;
        let per_day = |reads: usize, budget: f64| budget / per(reads);
        println!(
            "| {} | {events} | {before} | {after} | {:.2} | {:.2} | {:.0} | {:.0} |",
            workload.name,
            per(before),
            per(after),
            per_day(before, DAY),
            per_day(after, DAY * DEFAULT_SHARE),
        );
    }
}
