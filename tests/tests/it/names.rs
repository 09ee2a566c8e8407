//! Rules written in the names GHL shows a person: thirty sub-accounts cloned from
//! one snapshot, each with its own ids under the same names, served by one rule
//! each; names read once per location and kept, read again when a change names an
//! id they lack; custom fields by name or key.

use chrono::{DateTime, Duration, Utc};
use ghl_capi::enrich::{Enriched, Enricher};
use ghl_capi::ghl::names::LocationNames;
use ghl_capi::ghl::{Contact, GhlError};
use ghl_capi::hold::HoldPolicy;
use ghl_capi::jobs::EnrichJob;
use ghl_capi::mapping::Mapping;
use ghl_capi::ports::state::MemoryState;
use ghl_capi_tests::fakes::FakeGhl;
use ghl_capi_tests::fixtures;
use serde_json::{Value, json};

const RULES: &str = r#"
[[rules]]
name = "qualified"
trigger = "opportunity.stage_changed"
pipeline = "Sales"
stage = "Qualified"
event_name = "QualifiedLead"

[[rules]]
name = "roof-consultation"
trigger = "appointment.booked"
calendar = "Consultation"
event_name = "Schedule"

[[rules.when]]
field = "custom.How can we help?"
equals = "Roof"
"#;

fn now() -> DateTime<Utc> {
    "2026-12-06T12:00:00Z".parse().expect("time")
}

/// One snapshot's names under location `i`'s own ids.
fn names(i: usize) -> LocationNames {
    serde_json::from_value(json!({
        "pipelines": [{"id": format!("p-{i}"), "name": "Sales", "stages": [
            {"id": format!("s-{i}-new"), "name": "New"},
            {"id": format!("s-{i}-q"), "name": "Qualified"}]},
            {"id": format!("p-{i}-other"), "name": "Renewals", "stages": [
            {"id": format!("s-{i}-rq"), "name": "Qualified"}]}],
        "customFields": [{"id": format!("f-{i}"), "name": "How can we help?",
            "fieldKey": "contact.how_can_we_help"}],
        "calendars": [{"id": format!("k-{i}"), "name": "Consultation"},
            {"id": format!("k-{i}-demo"), "name": "Demo"}]
    }))
    .expect("names")
}

fn contact(i: usize, help: &str) -> Contact {
    serde_json::from_value(json!({
        "id": format!("c-{i}"), "locationId": format!("loc-{i}"),
        "email": format!("c{i}@example.com"), "dateAdded": "2026-12-06T10:00:00Z",
        "customFields": [{"id": format!("f-{i}"), "value": help}]
    }))
    .expect("contact")
}

fn job(key: String, body: Value) -> EnrichJob {
    EnrichJob::Webhook {
        key,
        received_at: now(),
        body: body.to_string(),
    }
}

fn stage_changed(i: usize, pipeline: &str, stage: &str) -> EnrichJob {
    job(
        format!("wh-{i}-{stage}"),
        json!({"type": "OpportunityStageUpdate", "locationId": format!("loc-{i}"),
            "id": format!("o-{i}"), "contactId": format!("c-{i}"), "pipelineId": pipeline,
            "pipelineStageId": stage, "status": "open", "timestamp": "2026-12-06T11:59:00Z"}),
    )
}

fn booked(i: usize, calendar: &str) -> EnrichJob {
    job(
        format!("wh-{i}-{calendar}"),
        json!({"type": "AppointmentCreate", "locationId": format!("loc-{i}"),
            "appointment": {"id": format!("a-{i}-{calendar}"), "calendarId": calendar,
            "contactId": format!("c-{i}"), "appointmentStatus": "confirmed",
            "dateAdded": "2026-12-06T11:59:00Z"}}),
    )
}

fn mapping() -> Mapping {
    Mapping::parse(&format!("{}\n{RULES}", fixtures::mapping_text()), "names").expect("valid")
}

/// The event names each job became.
async fn sent(
    mapping: &Mapping,
    ghl: &FakeGhl,
    state: &MemoryState,
    jobs: &[EnrichJob],
    at: DateTime<Utc>,
) -> Vec<Vec<String>> {
    let mut enricher = Enricher::new(mapping, ghl, state, HoldPolicy::default());
    let mut out = Vec::new();
    for job in jobs {
        match enricher.enrich(job, at).await {
            Enriched::Done {
                dispatch,
                dead_letters,
                ..
            } => {
                assert!(dead_letters.is_empty(), "{dead_letters:?}");
                let mut names: Vec<String> = dispatch
                    .iter()
                    .map(|d| d.event.event_name.clone())
                    .collect();
                names.dedup();
                out.push(names);
            }
            Enriched::Retry { reason, .. } => panic!("held: {reason:?}"),
        }
    }
    out
}

#[tokio::test]
async fn one_rule_in_names_serves_thirty_sub_accounts_cloned_from_one_snapshot() {
    let contacts: Vec<Contact> = (0..30)
        .map(|i| contact(i, if i % 2 == 0 { "Roof" } else { "Gutters" }))
        .collect();
    let ghl = FakeGhl::with(&contacts);
    for i in 0..30 {
        ghl.set_names(&format!("loc-{i}"), names(i));
    }
    let (mapping, state) = (mapping(), MemoryState::default());
    let mut jobs = Vec::new();
    for i in 0..30 {
        jobs.push(stage_changed(i, &format!("p-{i}"), &format!("s-{i}-q")));
        // "Qualified" of another pipeline, and another stage of Sales: no event.
        jobs.push(stage_changed(
            i,
            &format!("p-{i}-other"),
            &format!("s-{i}-rq"),
        ));
        jobs.push(stage_changed(i, &format!("p-{i}"), &format!("s-{i}-new")));
        jobs.push(booked(i, &format!("k-{i}")));
        jobs.push(booked(i, &format!("k-{i}-demo")));
    }
    let became = sent(&mapping, &ghl, &state, &jobs, now()).await;
    for i in 0..30 {
        let of = &became[i * 5..i * 5 + 5];
        let roof: &[&str] = if i % 2 == 0 { &["Schedule"] } else { &[] };
        assert_eq!(of[0], ["QualifiedLead"], "location {i}");
        assert!(of[1].is_empty() && of[2].is_empty(), "location {i}: {of:?}");
        assert_eq!(of[3], roof, "location {i}: by the custom field's name");
        assert!(of[4].is_empty(), "location {i}: another calendar");
    }
    let reads = ghl.reads();
    let name_reads = reads.iter().filter(|r| r.starts_with("names")).count();
    assert_eq!(name_reads, 30, "once per location: {reads:?}");

    // A later batch reads them from the state store, not GHL.
    let again = sent(
        &mapping,
        &ghl,
        &state,
        &jobs[..5],
        now() + Duration::minutes(10),
    )
    .await;
    assert_eq!(again[0], ["QualifiedLead"]);
    assert_eq!(
        ghl.reads()
            .iter()
            .filter(|r| r.starts_with("names"))
            .count(),
        30
    );
}

#[tokio::test]
async fn a_stage_the_names_lack_has_them_read_again_once_the_recheck_allows() {
    let ghl = FakeGhl::with(&[contact(0, "Roof")]);
    ghl.set_names("loc-0", names(0));
    let (mapping, state) = (mapping(), MemoryState::default());
    let first = sent(
        &mapping,
        &ghl,
        &state,
        &[stage_changed(0, "p-0", "s-0-q")],
        now(),
    )
    .await;
    assert_eq!(first[0], ["QualifiedLead"]);
    // A stage added in GHL since: renamed "Qualified" moved to it.
    let mut later = names(0);
    later.pipelines[0]
        .stages
        .push(serde_json::from_value(json!({"id": "s-0-q2", "name": "Qualified"})).expect("stage"));
    ghl.set_names("loc-0", later);
    let new_stage = [stage_changed(0, "p-0", "s-0-q2")];
    // Within the recheck, names just read are not read again.
    let soon = sent(
        &mapping,
        &ghl,
        &state,
        &new_stage,
        now() + Duration::minutes(1),
    )
    .await;
    assert!(soon[0].is_empty());
    let after = sent(
        &mapping,
        &ghl,
        &state,
        &new_stage,
        now() + Duration::minutes(6),
    )
    .await;
    assert_eq!(after[0], ["QualifiedLead"]);
    assert_eq!(
        ghl.reads()
            .iter()
            .filter(|r| r.starts_with("names"))
            .count(),
        2
    );
}

#[tokio::test]
async fn a_ghl_that_will_not_list_names_holds_the_job_unless_names_kept_serve_or_runs_it_on_ids() {
    let stage = [stage_changed(0, "p-0", "s-0-q")];
    let held = |outcome: &Enriched| matches!(outcome, Enriched::Retry { .. });
    let ghl = FakeGhl::with(&[contact(0, "Roof")]);
    ghl.set_names("loc-0", names(0));
    let (mapping, state) = (mapping(), MemoryState::default());
    let enrich = |at: DateTime<Utc>| {
        let (mapping, ghl, state, job) = (&mapping, &ghl, &state, &stage[0]);
        async move {
            let mut enricher = Enricher::new(mapping, ghl, state, HoldPolicy::default());
            enricher.enrich(job, at).await
        }
    };

    // Down an hour, or asking to slow down, with no names kept: the job waits.
    for error in [
        GhlError::unavailable("server error", "GHL answered 503"),
        GhlError::RateLimited {
            retry_after_ms: 10_000,
        },
    ] {
        ghl.set_names_failing(Some(error));
        assert!(
            held(&enrich(now()).await),
            "held while names cannot be read"
        );
    }
    // Read once, then down: the names kept serve, even past their hour.
    ghl.set_names_failing(None);
    assert!(!held(&enrich(now()).await));
    ghl.set_names_failing(Some(GhlError::unavailable(
        "server error",
        "GHL answered 503",
    )));
    let later = sent(&mapping, &ghl, &state, &stage, now() + Duration::hours(3)).await;
    assert_eq!(later[0], ["QualifiedLead"], "from the names kept");

    // A token without the scopes, and nothing kept: the rules run on ids alone.
    let fresh = MemoryState::default();
    ghl.set_names_failing(Some(GhlError::Forbidden {
        status: 401,
        message: "The token is not authorized for this scope.".into(),
    }));
    let on_ids = sent(&mapping, &ghl, &fresh, &stage, now()).await;
    assert!(
        on_ids[0].is_empty(),
        "a rule in names does not fire, and nothing waits"
    );
}
