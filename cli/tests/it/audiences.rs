//! Custom Audiences through `ghl-capi serve` as a real process: a contact's tags
//! move it in and out of an audience at a stand-in of Meta's `/users` edge, which
//! checks every request; a redelivered webhook sends nothing; an audience whose
//! token is unset runs dry, its requests appended to the outbox.

use std::collections::BTreeSet;
use std::time::Duration;

use ghl_capi::capi::audience::SCHEMA;
use ghl_capi::normalize::sha256_hex;
use ghl_capi_tests::audience_stand_in::{AudienceStandIn, Taken};
use ghl_capi_tests::fixtures::{self, VIP_AUDIENCE, contact, webhook};
use ghl_capi_tests::stand_in::{MetaStandIn, ghl_serves};
use serde_json::{Value, json};
use wiremock::MockServer;

use crate::serve::{free_port, start_with, try_deliver};

const DRY_AUDIENCE: &str = r#"
[[audiences]]
name = "dry"
audience_id = "999"
access_token = { env = "TEST_UNSET_ADS_TOKEN" }
tags = ["vip"]
"#;

/// Waits until the stand-in took `n` requests (and a little longer, to catch one
/// that should not come); what it took.
async fn taken(meta: &AudienceStandIn, n: usize) -> Vec<Taken> {
    for _ in 0..200 {
        if meta.taken().len() >= n {
            tokio::time::sleep(Duration::from_millis(500)).await;
            return meta.taken();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{} audience requests, not {n}: {:?}",
        meta.taken().len(),
        meta.taken()
    )
}

fn email_of(taken: &Taken) -> Vec<&str> {
    taken.rows.iter().map(|row| row[1].as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_move_a_contact_in_and_out_of_an_audience_through_serve() {
    let ghl = MockServer::start().await;
    let graph = MockServer::start().await;
    ghl_serves(
        &ghl,
        &contact("c-mary", "mary@example.com", &[]),
        "pit-local",
    )
    .await;
    MetaStandIn::expecting_token("EAAB-local")
        .mount(&graph, fixtures::DATASET)
        .await;
    let meta = AudienceStandIn::expecting_token("EAAB-ads");
    meta.mount(&graph, VIP_AUDIENCE).await;
    let dir = tempfile::tempdir().expect("dir");
    let mapping = dir.path().join("mapping.toml");
    let text = fixtures::mapping_text_with_token(r#"{ env = "TEST_META_TOKEN" }"#)
        + &fixtures::audiences(r#"{ env = "TEST_ADS_TOKEN" }"#)
        + DRY_AUDIENCE;
    std::fs::write(&mapping, text).expect("mapping written");
    let data = dir.path().join("data");
    let env = [("TEST_ADS_TOKEN".to_owned(), "EAAB-ads".to_owned())];
    let server = start_with(
        &data,
        &mapping,
        (&ghl.uri(), &graph.uri()),
        free_port(),
        &env,
    )
    .await;
    let http = reqwest::Client::new();
    let send = |id: &str, email: &str, tags: &[&str]| {
        webhook("ContactTagUpdate", id, contact("c-mary", email, tags))
    };
    let deliver = async |body: Vec<u8>| {
        assert_eq!(try_deliver(&http, &server.url, body).await, Some(200));
    };

    deliver(send("w1", "mary@example.com", &["vip"])).await;
    let mary = sha256_hex("mary@example.com").as_str().to_owned();
    let first = taken(&meta, 1).await;
    assert_eq!(
        (first[0].method.as_str(), email_of(&first[0])),
        ("POST", vec![mary.as_str()])
    );
    let row = &first[0].rows[0];
    assert_eq!(row.len(), SCHEMA.len());
    assert_eq!(
        row[3],
        sha256_hex("ann").as_str(),
        "FN, normalised and hashed"
    );

    // GHL delivers the same webhook again: nothing more.
    deliver(send("w1", "mary@example.com", &["vip"])).await;
    assert_eq!(taken(&meta, 1).await.len(), 1);

    // One change at a time, each waited for: its requests, exactly.
    let mut seen = 1;
    let mut step = async |body: Vec<u8>, requests: usize| {
        deliver(body).await;
        seen += requests;
        let all = taken(&meta, seen).await;
        assert_eq!(all.len(), seen, "{all:?}");
        all[seen - requests..]
            .iter()
            .map(|t| (t.method.clone(), email_of(t).join(",")))
            .collect::<Vec<_>>()
    };
    let one = |method: &str, email: &str| vec![(method.to_owned(), email.to_owned())];
    let new = sha256_hex("mary@new.example").as_str().to_owned();
    assert_eq!(
        step(send("w2", "mary@example.com", &[]), 1).await,
        one("DELETE", &mary)
    );
    assert_eq!(
        step(send("w3", "mary@example.com", &["gold"]), 1).await,
        one("POST", &mary)
    );
    let moved = webhook(
        "ContactUpdate",
        "w4",
        contact("c-mary", "mary@new.example", &["gold"]),
    );
    assert_eq!(
        step(moved, 2).await,
        [one("DELETE", &mary), one("POST", &new)].concat()
    );
    let deleted = json!({"id": "c-mary", "email": "mary@new.example", "tags": ["gold"]});
    assert_eq!(
        step(webhook("ContactDelete", "w5", deleted), 1).await,
        one("DELETE", &new)
    );
    assert_eq!(meta.members(VIP_AUDIENCE), BTreeSet::new());

    // The audience without a token ran dry: its requests are in the outbox.
    let outbox = std::fs::read_to_string(data.join("outbox.jsonl")).unwrap_or_default();
    let dry: Vec<Value> = outbox
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["audience_id"] == "999")
        .collect();
    let methods: Vec<&str> = dry.iter().filter_map(|l| l["method"].as_str()).collect();
    assert_eq!(
        methods,
        ["POST", "DELETE"],
        "joined with vip, left when it went"
    );
    assert_eq!(dry[0]["payload"]["data"][0][1], mary);
    assert!(!outbox.contains("mary@example.com"), "hashes only");
    drop(server);
}

/// `args` run, its stdout as text, asserting it succeeded.
fn stdout_of(args: &[&str]) -> String {
    let out = crate::cli::run(args, "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn mapping_check_lists_the_audiences_and_preview_shows_who_joins_with_the_row() {
    let dir = tempfile::tempdir().expect("dir");
    let mapping = dir.path().join("mapping.toml");
    let text =
        fixtures::mapping_text() + &fixtures::audiences(r#"{ secret = "ghl-capi/meta/ads" }"#);
    std::fs::write(&mapping, text).expect("mapping written");
    let mapping = mapping.to_str().expect("path");
    let checked = stdout_of(&["mapping", "check", mapping]);
    assert!(checked.contains("2 audience(s)"), "{checked}");
    assert!(
        checked.contains(
            "audience vips → custom audience 23851234567890123 (token: secret ghl-capi/meta/ads; \
             all locations): members while tagged vip or gold"
        ),
        "{checked}"
    );
    assert!(checked.contains("audience won-deals → custom audience 23851234567890456"));

    let body = dir.path().join("tagged.json");
    let tagged = json!({"type": "ContactTagUpdate", "locationId": "loc1", "id": "c1",
        "email": " Mary@Example.com", "phone": "+1 (555) 987-6543", "dateOfBirth": "1990-04-07",
        "tags": ["vip"], "timestamp": "2026-11-20T10:00:00Z"});
    std::fs::write(&body, tagged.to_string()).expect("body written");
    let body = body.to_str().expect("path");
    let shown = stdout_of(&["mapping", "preview", mapping, body, "--previous-tags", ""]);
    assert!(shown.contains("vips (23851234567890123): joins"), "{shown}");
    assert!(
        shown.contains("won-deals (23851234567890456): unchanged: this body says nothing"),
        "{shown}"
    );
    assert!(
        shown.contains(
            "EMAIL      \" Mary@Example.com\" → mary@example.com → \
             f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79"
        ),
        "{shown}"
    );
    assert!(
        shown.contains("DOBM       \"1990-04-07\" → 04 → "),
        "{shown}"
    );
    let left = stdout_of(&[
        "mapping",
        "preview",
        mapping,
        body,
        "--member-of",
        "vips",
        "--json",
    ]);
    let left: Value = serde_json::from_str(&left).expect("json");
    assert_eq!(left["audiences"][0]["change"], "staysin");
    let phone = left["audiences"][0]["row"]
        .as_array()
        .expect("row")
        .iter()
        .find(|k| k["key"] == "PHONE")
        .expect("phone")
        .clone();
    assert_eq!(
        phone["sha256"],
        "1ef970831d7963307784fa8688e8fce101a15685d62aa765fed23f3a2c576a4e"
    );
}
