//! `ghl-capi verify` against a mock GHL and a mock Graph API: what is fine, what is
//! not, the fix for each, and the exit code.

use std::process::Command;

use ghl_capi::capi::ServerEvent;
use ghl_capi::capi::client::DEFAULT_API_VERSION;
use ghl_capi::normalize::Field;
use ghl_capi_tests::fixtures;
use serde_json::json;
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The fixture mapping, its main pixel's token in `VERIFY_META_TOKEN`.
fn mapping() -> String {
    fixtures::mapping_text_with_token(r#"{ env = "VERIFY_META_TOKEN" }"#)
}

async fn mocks() -> (MockServer, MockServer) {
    let ghl = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/contacts/"))
        .and(query_param("locationId", "loc1"))
        .and(query_param("limit", "1"))
        .and(header("authorization", "Bearer pit-good"))
        .and(header("version", "2021-07-28"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"contacts": [{"id": "c1"}]})))
        .mount(&ghl)
        .await;
    Mock::given(method("GET"))
        .and(path("/contacts/c1"))
        .and(header("authorization", "Bearer pit-good"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"contact": {"id": "c1"}})))
        .mount(&ghl)
        .await;
    Mock::given(method("GET"))
        .and(header("authorization", "Bearer pit-revoked"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&ghl)
        .await;
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/{DEFAULT_API_VERSION}/{}/events",
            fixtures::DATASET
        )))
        .and(body_partial_json(
            json!({"test_event_code": "TEST42", "access_token": "EAAB-ok"}),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"events_received": 1, "fbtrace_id": "A"})),
        )
        .expect(1..)
        .mount(&graph)
        .await;
    (ghl, graph)
}

fn verify(ghl: &MockServer, graph: &MockServer, mapping: &str, extra: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("mapping.toml");
    std::fs::write(&file, mapping).expect("written");
    let out = Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .arg("verify")
        .arg("--mapping")
        .arg(&file)
        .args(extra)
        .env("GHL_API_BASE_URL", ghl.uri())
        .env("GRAPH_API_BASE_URL", graph.uri())
        .env("GHL_TOKEN_loc1", "pit-good")
        .env("GHL_TOKEN_locbad", "pit-revoked")
        .env("VERIFY_META_TOKEN", "EAAB-ok")
        .env("VERIFY_ADS_TOKEN", "EAAB-ads")
        .env_remove("TEST_UNSET_META_TOKEN")
        .output()
        .expect("verify runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn row<'a>(table: &'a str, subject: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(subject))
        .unwrap_or_else(|| panic!("no row for {subject} in\n{table}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn problems_are_listed_with_their_fixes_and_fail_the_run() {
    let (ghl, graph) = mocks().await;
    let (code, table) = verify(
        &ghl,
        &graph,
        &mapping(),
        &["--location", "loc1", "--location", "locbad"],
    );
    assert_eq!(code, 1, "{table}");
    assert!(table.starts_with("CHECK"), "{table}");
    let good = row(&table, "loc1");
    assert!(
        good.contains(" yes ") && good.contains("read one contact"),
        "{good}"
    );
    let bad = row(&table, "locbad");
    assert!(bad.contains(" NO ") && bad.contains("oauth url"), "{bad}");
    let main = row(&table, "main");
    assert!(main.contains(" yes ") && main.contains("TEST42"), "{main}");
    let second = row(&table, "second");
    assert!(
        second.contains(" NO ") && second.contains("TEST_UNSET_META_TOKEN"),
        "{second}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_fine_exits_zero() {
    let (ghl, graph) = mocks().await;
    let first_pixel_only = mapping().replace(
        "[[pixels]]\nname = \"second\"\ndataset_id = \"456\"\naccess_token = { env = \"TEST_UNSET_META_TOKEN\" }\nlocations = [\"loc2\"]\n",
        "",
    );
    assert_ne!(first_pixel_only, mapping());
    let (code, table) = verify(&ghl, &graph, &first_pixel_only, &["--location", "loc1"]);
    assert_eq!(code, 0, "{table}");
    assert_eq!(
        table.lines().count(),
        1 + 2,
        "one location, one pixel: {table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_says_which_rules_polling_cannot_recover() {
    let (ghl, graph) = mocks().await;
    let with_updates = mapping()
        .replace(
            "[[pixels]]\nname = \"second\"\ndataset_id = \"456\"\naccess_token = { env = \"TEST_UNSET_META_TOKEN\" }\nlocations = [\"loc2\"]\n",
            "",
        )
        + "\n[[rules]]\nname = \"qualified\"\ntrigger = \"contact.updated\"\nevent_name = \"Qualified\"\n";
    let (code, said) = verify(&ghl, &graph, &with_updates, &["--location", "loc1"]);
    assert_eq!(code, 0, "a limit said, not a failure: {said}");
    let note = said.lines().last().unwrap_or_default();
    assert!(
        note.starts_with("note: rules on contact.updated come from GHL's webhooks only"),
        "{said}"
    );
    // Without such rules, no note.
    let (_, said) = verify(&ghl, &graph, &mapping(), &["--location", "loc1"]);
    assert!(!said.contains("note:"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_audience_is_read_with_its_token_and_a_flagged_one_fails() {
    use ghl_capi_tests::audience_stand_in::AudienceStandIn;
    let (ghl, graph) = mocks().await;
    let meta = AudienceStandIn::expecting_token("EAAB-ads");
    meta.mount(&graph, fixtures::VIP_AUDIENCE).await;
    let text = mapping() + &fixtures::audiences(r#"{ env = "VERIFY_ADS_TOKEN" }"#);
    let (_, table) = verify(&ghl, &graph, &text, &["--location", "loc1"]);
    let vips = row(&table, "vips");
    assert!(
        vips.contains(" yes ") && vips.contains("readable: Webinar VIPs"),
        "{vips}"
    );
    // Not at this Graph API: the token cannot read it.
    let won = row(&table, "won-deals");
    assert!(
        won.contains(" NO ") && won.contains("ads_management"),
        "{won}"
    );

    meta.block();
    let (code, table) = verify(&ghl, &graph, &text, &["--location", "loc1"]);
    assert_eq!(code, 1);
    let vips = row(&table, "vips");
    assert!(
        vips.contains(" NO ") && vips.contains("flagged (operation_status 471"),
        "{vips}"
    );
    assert!(vips.contains("health or financial data"), "{vips}");
    let unset = text.replace("VERIFY_ADS_TOKEN", "TEST_UNSET_ADS_TOKEN");
    let (_, table) = verify(&ghl, &graph, &unset, &["--location", "loc1"]);
    let vips = row(&table, "vips");
    assert!(
        vips.contains(" NO ") && vips.contains("TEST_UNSET_ADS_TOKEN"),
        "{vips}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_name_a_location_lacks_is_said_with_what_it_has() {
    let (ghl, graph) = mocks().await;
    for (at, version, body) in [
        (
            "/opportunities/pipelines",
            "2021-07-28",
            json!({"pipelines": [{"id": "p1", "name": "Sales", "stages": [
                {"id": "s1", "name": "New"}, {"id": "s2", "name": "Won"}]}]}),
        ),
        (
            "/locations/loc1/customFields",
            "2021-07-28",
            json!({"customFields": [{"id": "f1", "name": "How can we help?", "fieldKey": "contact.how_can_we_help"}]}),
        ),
        (
            "/calendars/",
            "2021-04-15",
            json!({"calendars": [{"id": "k1", "name": "Consultation"}]}),
        ),
    ] {
        Mock::given(method("GET"))
            .and(path(at))
            .and(header("authorization", "Bearer pit-good"))
            .and(header("version", version))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&ghl)
            .await;
    }
    let named = mapping()
        + r#"
[[rules]]
name = "qualified"
trigger = "opportunity.stage_changed"
pipeline = "Sales"
stage = "Qualified"
event_name = "QualifiedLead"

[[rules]]
name = "consultation"
trigger = "appointment.booked"
calendar = "Consultation"
event_name = "Schedule"

[[rules.when]]
field = "custom.how_can_we_help"
exists = true
"#;
    let (code, table) = verify(&ghl, &graph, &named, &["--location", "loc1"]);
    assert_eq!(code, 1, "{table}");
    let names = table
        .lines()
        .find(|l| l.starts_with("names"))
        .unwrap_or_else(|| panic!("no names row in\n{table}"));
    assert!(
        names.contains(" NO ")
            && names.contains(
                r#"rule qualified: no stage "Qualified" in pipeline "Sales" (it has: New, Won)"#
            )
            && !names.contains("consultation"),
        "{names}"
    );
}

/// A local store holding a day of Lead events Meta took for the fixture's pixel:
/// ten with an e-mail, six of them with a phone too.
async fn store_with_leads() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    let store = ghl_capi_local::store::Store::open(&dir.path().join("store.db")).expect("store");
    let state = ghl_capi_local::ports::LocalState(store);
    let events: Vec<ServerEvent> = (0..10)
        .map(|i| {
            let mut event = ServerEvent::default();
            event.event_name = "Lead".into();
            event
                .user_data
                .add(Field::Email, &format!("p{i}@example.com"), None);
            if i < 6 {
                event
                    .user_data
                    .add(Field::Phone, &format!("+1650555{i:04}"), None);
            }
            event
        })
        .collect();
    ghl_capi::quality::record(
        &state,
        fixtures::DATASET,
        &ghl_capi::quality::counted(&events, false),
        chrono::Utc::now(),
    )
    .await
    .expect("recorded");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_pixels_match_quality_is_shown_with_its_gaps_and_metas_own_figures() {
    let (ghl, graph) = mocks().await;
    Mock::given(method("GET"))
        .and(path(format!("/{DEFAULT_API_VERSION}/dataset_quality")))
        .and(query_param("dataset_id", fixtures::DATASET))
        .and(query_param("agent_name", "ghl-capi"))
        .and(header("authorization", "Bearer EAAB-ok"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"web": [{
            "event_name": "Lead",
            "event_match_quality": {"composite_score": 6.4, "match_key_feedback": [
                {"identifier": "email", "coverage": {"percentage": 98}}]},
            "event_coverage": {"percentage": 64}}]})))
        .expect(1)
        .mount(&graph)
        .await;
    let store = store_with_leads().await;
    let data_dir = store.path().to_str().expect("utf-8");
    let (code, out) = verify(
        &ghl,
        &graph,
        &mapping(),
        &["--data-dir", data_dir, "--last", "5"],
    );
    assert_eq!(code, 1, "the second pixel has no token: {out}");
    let main = out
        .lines()
        .skip_while(|l| !l.starts_with("match quality"))
        .skip_while(|l| !l.contains(&format!("main ({})", fixtures::DATASET)))
        .take(7)
        .collect::<Vec<_>>()
        .join("\n");
    // E-mail (2.0) on all, phone (1.5) on six: 2.9 on average.
    assert!(
        main.contains("the last 10 events (today), average score 2.9 of 10"),
        "{main}"
    );
    assert!(
        main.contains("lacking: lead id 100 %, click id 100 %, phone 40 %"),
        "{main}"
    );
    assert!(
        main.contains("40 % of Lead events have no phone: GHL has none for these contacts"),
        "{main}"
    );
    assert!(
        main.contains("match quality 6.4 of 10, event coverage 64 %, keys: email 98 %"),
        "{main}"
    );
    let second = out
        .lines()
        .skip_while(|l| !l.starts_with("match quality"))
        .skip_while(|l| !l.contains("second (456)"))
        .take(2)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        second.contains("no events sent in the last 28 days"),
        "{second}"
    );
    assert!(
        second.contains("no access token is configured for 456"),
        "{second}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_may_not_read_metas_figures_gets_one_line_not_an_error() {
    let (ghl, graph) = mocks().await;
    Mock::given(method("GET"))
        .and(path(format!("/{DEFAULT_API_VERSION}/dataset_quality")))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "code": 200, "type": "OAuthException",
            "message": "(#200) Requires ads_read permission"}})))
        .mount(&graph)
        .await;
    let store = store_with_leads().await;
    let first_pixel_only = mapping().replace(
        "[[pixels]]\nname = \"second\"\ndataset_id = \"456\"\naccess_token = { env = \"TEST_UNSET_META_TOKEN\" }\nlocations = [\"loc2\"]\n",
        "",
    );
    let data_dir = store.path().to_str().expect("utf-8");
    let (code, out) = verify(&ghl, &graph, &first_pixel_only, &["--data-dir", data_dir]);
    assert_eq!(
        code, 0,
        "Meta's figures are a bonus, never a failure: {out}"
    );
    let line = out
        .lines()
        .find(|l| l.contains("Meta's own figures"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("not shown; the pixel's token may not read Meta's Dataset Quality API")
            && line.contains("Requires ads_read permission"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_judges_the_pixels_month_against_metas_requirements() {
    let (ghl, graph) = mocks().await;
    let dir = tempfile::tempdir().expect("dir");
    let store = ghl_capi_local::store::Store::open(&dir.path().join("store.db")).expect("store");
    let state = ghl_capi_local::ports::LocalState(store);
    // Thirty days of ten Leads (each with its Lead Ads id) and two Qualified.
    let event = |name: &str, lead_id: Option<u64>| {
        let mut event = ServerEvent::default();
        event.event_name = name.into();
        event.user_data.add(Field::Email, "a@example.com", None);
        event.user_data.lead_id = lead_id;
        event
    };
    let mut day: Vec<ServerEvent> = (0..10)
        .map(|i| event("Lead", Some(100_000_000_000_000 + i)))
        .collect();
    day.extend((0..2).map(|_| event("Qualified", None)));
    let counted = ghl_capi::quality::counted(&day, false);
    for back in 0..30 {
        let at = chrono::Utc::now() - chrono::Duration::days(back);
        ghl_capi::quality::record(&state, fixtures::DATASET, &counted, at)
            .await
            .expect("recorded");
    }
    let data_dir = dir.path().to_str().expect("utf-8");
    let args = [
        "--data-dir",
        data_dir,
        "--readiness",
        "--pixel",
        "main",
        "--meta-leads",
        "400",
    ];
    let (code, out) = verify(&ghl, &graph, &mapping(), &args);
    let section: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("Conversion Leads readiness of main"))
        .collect();
    let line = |requirement: &str| -> String {
        section
            .iter()
            .find(|l| l.contains(requirement))
            .unwrap_or_else(|| panic!("{requirement} in {out}"))
            .to_string()
    };
    assert!(
        line("leads a month").starts_with("  met      leads a month        300 Lead events"),
        "{out}"
    );
    assert!(
        line("lead coverage").contains("75 %: 300 Lead events carry a lead id, of 400"),
        "{out}"
    );
    assert!(line("stages").contains("2 sent: Lead, Qualified"), "{out}");
    assert!(
        line("uploads every day").contains("events on 7 of the last 7 days"),
        "{out}"
    );
    assert!(
        line("target stage").contains("Qualified: 56 in the last 28 days for 280 leads, 20.0 %"),
        "{out}"
    );
    // The fixture's pixel sends test events: not ready, and told why.
    assert!(line("no test events").starts_with("  NOT MET"), "{out}");
    assert!(
        out.contains("→ remove test_event_code from the pixel in the mapping"),
        "{out}"
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        !section.iter().any(|l| l.contains("second")),
        "only --pixel main: {out}"
    );

    let unknown = ["--data-dir", data_dir, "--readiness", "--pixel", "nope"];
    let (code, out) = verify(&ghl, &graph, &mapping(), &unknown);
    assert!(
        code != 0 && out.is_empty(),
        "an unknown pixel, refused before any call: {out}"
    );

    let (code, out) = verify(&ghl, &graph, &mapping(), &["--readiness"]);
    assert!(
        code != 0 && out.is_empty(),
        "no record to read, nothing checked: {out}"
    );
}
