//! `ghl-capi backfill` as an operator runs it, against a stand-in of GHL's
//! contacts: a dry run writes `map`'s request bodies and counts what is too old
//! to send; a run queues the recent contacts for the pipeline, and a second run
//! with `--resume` has nothing left to do. Opportunities won in the period write
//! their purchases, and those won too long ago are counted by rule.

use std::process::{Command, Output};

use chrono::Utc;
use ghl_capi_tests::contacts_stand_in::ContactsStandIn;
use ghl_capi_tests::fixtures::{self, LOCATION};
use wiremock::MockServer;

fn backfill(ghl: &str, data: &std::path::Path, extra: &[&str]) -> Output {
    let since = (Utc::now() - chrono::Duration::days(25))
        .format("%Y-%m-%d")
        .to_string();
    Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .args(["backfill", "--location", LOCATION, "--since", &since])
        .arg("--mapping")
        .arg(fixtures::mapping_path())
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .env("GHL_API_BASE_URL", ghl)
        .env("GHL_TOKEN_loc1", "pit-local")
        .output()
        .expect("backfill runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A dry run against `ghl`'s stand-in, served: the events it wrote, and its
/// summary.
async fn dry_run(
    ghl: &ContactsStandIn,
    data: &std::path::Path,
) -> (Vec<serde_json::Value>, String) {
    let server = MockServer::start().await;
    ghl.mount(&server).await;
    let dry = backfill(&server.uri(), data, &["--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let events = text(&dry.stdout)
        .lines()
        .flat_map(|line| {
            let body: serde_json::Value = serde_json::from_str(line).expect("a request body");
            body["data"].as_array().expect("data").clone()
        })
        .collect();
    (events, text(&dry.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_writes_the_bodies_and_a_run_queues_the_recent_contacts_once() {
    let ghl = ContactsStandIn::new(LOCATION);
    let now = Utc::now();
    for i in 0..10 {
        let tags: &[&str] = if i < 4 { &["vip"] } else { &[] };
        ghl.create(&format!("new{i}"), tags, now - chrono::Duration::days(2));
    }
    for i in 0..20 {
        ghl.create(&format!("old{i}"), &[], now - chrono::Duration::days(20));
    }
    ghl.create("ancient", &[], now - chrono::Duration::days(90));
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let (events, summary) = dry_run(&ghl, &data).await;
    let server = MockServer::start().await;
    ghl.mount(&server).await;
    let mut names: Vec<&str> = events
        .iter()
        .filter_map(|e| e["event_name"].as_str())
        .collect();
    names.sort();
    assert_eq!(
        names.iter().filter(|n| **n == "Lead").count(),
        10,
        "{names:?}"
    );
    assert_eq!(
        names
            .iter()
            .filter(|n| **n == "CompleteRegistration")
            .count(),
        4
    );
    assert!(summary.contains("30 contacts created since"), "{summary}");
    assert!(
        summary.contains("10 would be queued, with 14 events (lead 10, vip 4)"),
        "{summary}"
    );
    assert!(
        summary.contains("20 events older than 7 days, which Meta no longer takes, not sent (lead 20); add an audience rule to use them"),
        "{summary}"
    );

    let sent = backfill(&server.uri(), &data, &[]);
    assert!(sent.status.success(), "{}", text(&sent.stderr));
    let said = text(&sent.stdout);
    assert!(
        said.contains("10 queued for the pipeline, with 14 events"),
        "{said}"
    );
    let resumed = backfill(&server.uri(), &data, &["--resume"]);
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    assert!(
        text(&resumed.stdout).contains("10 queued for the pipeline"),
        "the tally as it was"
    );
    let searches = ghl.searches().len();
    assert_eq!(
        searches, 2,
        "a finished backfill lists nothing more on --resume"
    );

    let unknown = backfill(&server.uri(), &data, &["--rules", "nope"]);
    assert!(!unknown.status.success());
    assert!(
        text(&unknown.stderr).contains("the mapping has no rule named nope"),
        "{}",
        text(&unknown.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_writes_the_recent_wins_purchases_and_counts_the_old_ones_by_rule() {
    let ghl = ContactsStandIn::new(LOCATION);
    let now = Utc::now();
    let days = |n| now - chrono::Duration::days(n);
    for i in 0..5 {
        let (id, contact) = (format!("o{i}"), format!("old{i}"));
        ghl.create(&contact, &[], days(20));
        ghl.create_opportunity(&id, &contact, ("s1", "open"), days(20));
        let won = if i < 3 { days(2) } else { days(10) };
        ghl.move_opportunity(&id, ("s2", "won"), won);
    }
    let dir = tempfile::tempdir().expect("dir");
    let (events, summary) = dry_run(&ghl, &dir.path().join("data")).await;
    let purchases: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event_name"] == "Purchase")
        .collect();
    assert_eq!(purchases.len(), 3, "{events:?}");
    assert!(purchases.iter().all(|p| p["custom_data"]["value"] == 250.0));
    assert!(
        summary.contains("and 3 of 5 opportunities changed then, with 3 events (won 3)"),
        "{summary}"
    );
    assert!(
        summary.contains("7 events older than 7 days, which Meta no longer takes, not sent (lead 5, won 2); add an audience rule to use them"),
        "{summary}"
    );
}
