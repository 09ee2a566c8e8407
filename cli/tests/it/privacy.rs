//! Limited Data Use and consent through `ghl-capi serve` as a real process: the
//! events Meta's stand-in receives carry `data_processing_options` where the
//! contact's state says so, the audience rows carry the LDU columns, and a contact
//! with Do Not Disturb on gets nothing, said in its trace.

use std::process::Command;
use std::time::Duration;

use ghl_capi_tests::audience_stand_in::AudienceStandIn;
use ghl_capi_tests::fixtures::{self, VIP_AUDIENCE, contact, webhook};
use ghl_capi_tests::stand_in::{MetaStandIn, ghl_serves};
use serde_json::{Value, json};
use wiremock::MockServer;

use crate::serve::{free_port, start_with, try_deliver};

/// The fixture mapping and its audiences, with LDU for Californians and consent
/// by Do Not Disturb as the defaults every rule and audience takes.
fn mapping() -> String {
    let text = fixtures::mapping_text_with_token(r#"{ env = "TEST_META_TOKEN" }"#)
        + &fixtures::audiences(r#"{ env = "TEST_ADS_TOKEN" }"#);
    let defaults = "currency = \"USD\"\n";
    assert!(text.contains(defaults));
    text.replacen(
        defaults,
        &format!(
            "{defaults}limited_data_use = {{ field = \"contact.state\", one_of = [\"CA\", \"California\"] }}\nconsent = \"dnd\"\n"
        ),
        1,
    )
}

fn person(id: &str, state: &str, dnd: bool, tags: &[&str]) -> Value {
    let mut c = contact(id, &format!("{id}@example.com"), tags);
    c["state"] = json!(state);
    c["dnd"] = json!(dnd);
    c
}

async fn events(meta: &MetaStandIn, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        if meta.events().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A little longer, to catch one that should not come.
    tokio::time::sleep(Duration::from_millis(500)).await;
    meta.events()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldu_reaches_meta_by_the_contacts_state_and_a_dnd_contact_gets_nothing() {
    let (ghl, graph) = (MockServer::start().await, MockServer::start().await);
    let people = [
        person("c-ca", "CA", false, &["vip"]),
        person("c-tx", "TX", false, &["vip"]),
        person("c-dnd", "CA", true, &["vip"]),
    ];
    for p in &people {
        ghl_serves(&ghl, p, "pit-local").await;
    }
    let meta = MetaStandIn::expecting_token("EAAB-local");
    meta.mount(&graph, fixtures::DATASET).await;
    let audiences = AudienceStandIn::expecting_token("EAAB-ads");
    audiences.mount(&graph, VIP_AUDIENCE).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("mapping.toml");
    std::fs::write(&file, mapping()).expect("mapping written");
    let data = dir.path().join("data");
    let env = [("TEST_ADS_TOKEN".to_owned(), "EAAB-ads".to_owned())];
    let server = start_with(&data, &file, (&ghl.uri(), &graph.uri()), free_port(), &env).await;
    let http = reqwest::Client::new();
    for (i, p) in people.iter().enumerate() {
        let body = webhook("ContactCreate", &format!("w{i}"), p.clone());
        assert_eq!(try_deliver(&http, &server.url, body).await, Some(200));
    }

    // Each consenting contact's Lead and CompleteRegistration (tag vip), no more.
    let sent = events(&meta, 4).await;
    let by_contact = |c: &str| -> Vec<&Value> {
        let external = ghl_capi::normalize::sha256_hex(c);
        sent.iter()
            .filter(|e| e["user_data"]["external_id"][0] == external.as_str())
            .collect()
    };
    assert_eq!(sent.len(), 4, "{sent:#?}");
    assert!(by_contact("c-dnd").is_empty(), "Do Not Disturb: nothing");
    for event in by_contact("c-ca") {
        assert_eq!(event["data_processing_options"], json!(["LDU"]), "{event}");
        assert_eq!(event["data_processing_options_country"], 0);
        assert_eq!(event["data_processing_options_state"], 0);
    }
    for event in by_contact("c-tx") {
        assert!(event.get("data_processing_options").is_none(), "{event}");
    }

    // The audience's rows carry the LDU columns: limited for c-ca, not for c-tx.
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = audiences
            .members(VIP_AUDIENCE)
            .into_iter()
            .collect::<Vec<_>>();
        if rows.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ldu_of = |id: &str| -> Vec<String> {
        let email = ghl_capi::normalize::sha256_hex(&format!("{id}@example.com"));
        let row = rows
            .iter()
            .find(|r| r[1] == email.as_str())
            .unwrap_or_else(|| panic!("{id} in {rows:?}"));
        row[13..].to_vec()
    };
    assert_eq!(rows.len(), 2, "c-dnd is no member either: {rows:?}");
    assert_eq!(ldu_of("c-ca"), ["LDU", "0", "0"]);
    assert_eq!(ldu_of("c-tx"), ["", "0", "0"]);

    // The trace of the contact says why it got nothing.
    let trace = Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .args(["trace", "--contact", "c-dnd", "--data-dir"])
        .arg(&data)
        .output()
        .expect("trace runs");
    let told = String::from_utf8_lossy(&trace.stdout);
    assert!(
        told.contains("no consent: the rule sends nothing for this contact")
            && told.contains("rule=lead")
            && told.contains("reason=the contact has Do Not Disturb on in GHL"),
        "{told}"
    );
    // Each event built says its identifier coverage score in the trace.
    let trace = Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .args(["trace", "--contact", "c-ca", "--data-dir"])
        .arg(&data)
        .output()
        .expect("trace runs");
    let told = String::from_utf8_lossy(&trace.stdout);
    let built = told
        .lines()
        .find(|l| l.contains("event built") && l.contains("rule=lead"))
        .unwrap_or_else(|| panic!("{told}"));
    // E-mail 2.0, click id 2.0, external id 0.7, first name 0.25, state and
    // country 0.1 each: 5.15.
    assert!(
        built.contains("score=5.2") && built.contains("lacking=lead_id ph ln"),
        "{built}"
    );
    drop(server);
}

#[test]
fn mapping_check_says_each_rules_and_audiences_ldu_and_consent() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("mapping.toml");
    std::fs::write(&file, mapping()).expect("mapping written");
    let out = Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .args(["mapping", "check"])
        .arg(&file)
        .output()
        .expect("check runs");
    assert!(out.status.success());
    let told = String::from_utf8_lossy(&out.stdout);
    let said = "; LDU where contact.state one_of holds; consent: not Do Not Disturb\n";
    let rule = told
        .lines()
        .find(|l| l.starts_with("  rule lead:"))
        .expect("rule lead");
    assert!(format!("{rule}\n").ends_with(said), "{told}");
    let audience = told
        .lines()
        .find(|l| l.starts_with("  audience vips"))
        .expect("audience");
    assert!(format!("{audience}\n").ends_with(said), "{told}");
}

#[tokio::test]
async fn the_report_reads_each_locations_weeks_as_text_and_csv() {
    use ghl_capi::capi::ServerEvent;
    use ghl_capi::normalize::Field;
    use ghl_capi::quality::report;

    let dir = tempfile::tempdir().expect("dir");
    let store = ghl_capi_local::store::Store::open(&dir.path().join("store.db")).expect("store");
    let state = ghl_capi_local::ports::LocalState(store);
    let event = |name: &str, phone: bool| {
        let mut event = ServerEvent::default();
        event.event_name = name.into();
        event.user_data.add(Field::Email, "a@example.com", None);
        if phone {
            event.user_data.add(Field::Phone, "+16505551212", None);
        }
        event.user_data.lead_id = phone.then_some(100_000_000_000_001);
        event
    };
    let (lead, bare, won) = (
        event("Lead", true),
        event("Lead", false),
        event("Purchase", false),
    );
    let now = chrono::Utc::now();
    let events = [(&lead, "c1"), (&bare, "c2"), (&lead, "c1"), (&won, "c1")];
    report::record(&state, "loc1", events, false, now)
        .await
        .expect("recorded");
    report::record(&state, "loc2", [(&bare, "c9")], false, now)
        .await
        .expect("recorded");
    let week = report::week_of(now.date_naive());
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
            .arg("report")
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .expect("report runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Lead: c1 twice (lead id, e-mail, phone: 6.0 each) and c2 once (e-mail: 2.0).
    let csv = run(&["--csv", "--since", "7d"]);
    assert_eq!(
        csv,
        format!(
            "location,week,stage,contacts,events,test_events,lead_id_share,email_share,phone_share,average_score\n\
             loc1,{week},Lead,2,3,0,67,100,67,4.7\n\
             loc1,{week},Purchase,1,1,0,0,100,0,2.0\n\
             loc2,{week},Lead,1,1,0,0,100,0,2.0\n"
        )
    );
    let text = run(&["--location", "loc2"]);
    assert!(
        text.contains(&format!("location loc2 · week of {week}")),
        "{text}"
    );
    assert!(!text.contains("loc1"), "{text}");
}
