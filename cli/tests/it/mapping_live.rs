//! The live mapping in local mode: `mapping publish` checks a version, shows what
//! it changes and makes it the file `serve` runs, keeping the versions beside it;
//! `serve` takes a new version from its next batch without a restart, and keeps
//! the running one when the file stops passing its checks; `history`, `pull` and
//! `rollback` work on the versions kept.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::serve::{admin_in, free_port, serve_command, start_saying};

const DEMO: &str = include_str!("../../../local/samples/mapping.toml");

fn ghl_capi(args: &[&str], mapping: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .args(args)
        .arg("--mapping")
        .arg(mapping)
        .stdin(Stdio::null())
        .output()
        .expect("runs")
}

fn said(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Sends the demo webhook to `url` and waits for `event` in the outbox.
async fn sent_as(url: &str, data: &Path, event: &str, before: usize) {
    let sent = Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .args(["demo", "send", "--to", url])
        .output()
        .expect("demo send runs");
    assert!(sent.status.success(), "{}", said(&sent));
    let mut lines = Vec::new();
    for _ in 0..100 {
        let written = std::fs::read_to_string(data.join("outbox.jsonl")).unwrap_or_default();
        lines = written.lines().map(str::to_owned).collect::<Vec<_>>();
        if lines.len() > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(lines.len(), before + 1, "one more request in the outbox");
    assert!(
        lines[before].contains(&format!("\"{event}\"")),
        "{}",
        lines[before]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_version_runs_in_serve_from_its_next_batch_and_rolls_back_in_one_command() {
    let dir = tempfile::tempdir().expect("dir");
    let (live, data) = (dir.path().join("mapping.toml"), dir.path().join("data"));
    std::fs::write(&live, DEMO).expect("written");
    let port = free_port();
    let mut command = serve_command(&data, &live, port);
    command
        .env("MAPPING_REFRESH_SECONDS", "1")
        .env_remove("META_ACCESS_TOKEN")
        .env_remove("RUST_LOG");
    let server = start_saying(command, port, &dir.path().join("serve.out")).await;
    sent_as(&server.url, &data, "Lead", 0).await;

    // A version that fails its checks is never published; nor one nobody confirmed.
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[[rules]]\nname = 1\n").expect("written");
    let out = ghl_capi(
        &[
            "mapping",
            "publish",
            broken.to_str().expect("path"),
            "--yes",
        ],
        &live,
    );
    assert!(!out.status.success(), "{}", said(&out));
    let renamed = dir.path().join("renamed.toml");
    std::fs::write(&renamed, DEMO.replace("\"Lead\"", "\"Contact\"")).expect("written");
    let path = renamed.to_str().expect("path");
    let out = ghl_capi(&["mapping", "publish", path], &live);
    assert!(
        !out.status.success() && said(&out).contains("--yes"),
        "{}",
        said(&out)
    );
    assert_eq!(std::fs::read_to_string(&live).expect("live"), DEMO);

    let out = ghl_capi(&["mapping", "publish", path, "--yes"], &live);
    let told = said(&out);
    assert!(out.status.success(), "{told}");
    assert!(told.contains("~ rule new-contact-lead: changed"), "{told}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sent_as(&server.url, &data, "Contact", 1).await;

    // Edited by hand into something that does not pass: the running one stays.
    std::fs::write(&live, "not a mapping [").expect("written");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sent_as(&server.url, &data, "Contact", 2).await;
    let log = std::fs::read_to_string(dir.path().join("serve.out")).expect("log");
    assert!(log.contains("does not pass its checks"), "{log}");
    // The status page says which version runs, and which was not taken and why.
    let admin = admin_in(&dir.path().join("serve.out"));
    let page = reqwest::get(format!("{admin}/status")).await.expect("page");
    let page = page.text().await.expect("text");
    let running = ghl_capi::ports::mappings::version_of(&DEMO.replace("\"Lead\"", "\"Contact\""));
    assert!(
        page.contains(&format!("Mapping version <b>{running}</b>")),
        "{page}"
    );
    let broken = ghl_capi::ports::mappings::version_of("not a mapping [");
    assert!(
        page.contains(&format!("Version <b>{broken}</b> was not taken")),
        "{page}"
    );

    // Back to the version before, in one command.
    std::fs::write(&live, DEMO.replace("\"Lead\"", "\"Contact\"")).expect("written");
    let out = ghl_capi(&["mapping", "rollback", "--yes"], &live);
    assert!(out.status.success(), "{}", said(&out));
    assert_eq!(std::fs::read_to_string(&live).expect("live"), DEMO);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sent_as(&server.url, &data, "Lead", 3).await;

    // An agency's mapping, thirty sub-accounts in names, over 50 KB: taken alike.
    let agency = dir.path().join("agency.toml");
    let text =
        ghl_capi_tests::fixtures::agency_mapping(&DEMO.replace("\"Lead\"", "\"AgencyLead\""));
    assert!(text.len() > 50_000);
    std::fs::write(&agency, &text).expect("written");
    let out = ghl_capi(
        &[
            "mapping",
            "publish",
            agency.to_str().expect("path"),
            "--yes",
        ],
        &live,
    );
    assert!(out.status.success(), "{}", said(&out));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sent_as(&server.url, &data, "AgencyLead", 4).await;
    drop(server);

    // `mapping diff` replays what serve kept: five demo webhooks of one contact.
    let demo = dir.path().join("demo.toml");
    std::fs::write(&demo, DEMO).expect("written");
    let diff = Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .args(["mapping", "diff"])
        .args([&demo, &renamed])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("diff runs");
    let told = said(&diff);
    assert!(diff.status.success(), "{told}");
    assert!(
        told.contains("5 kept webhook(s) and workflow call(s) replayed"),
        "{told}"
    );
    assert!(
        told.contains("- Lead (new-contact-lead): stops for 1 contact(s): demoContact00001"),
        "{told}"
    );
    assert!(
        told.contains("+ Contact (new-contact-lead): starts for 1 contact(s): demoContact00001"),
        "{told}"
    );

    let history = said(&ghl_capi(&["mapping", "history"], &live));
    assert_eq!(
        history.lines().count(),
        4,
        "as it ran first, renamed, back, the agency's: {history}"
    );
    assert!(
        history
            .lines()
            .next()
            .is_some_and(|l| l.ends_with("(live)")),
        "{history}"
    );
    let pulled = ghl_capi(&["mapping", "pull"], &live);
    assert_eq!(String::from_utf8_lossy(&pulled.stdout), text);
    // `trace` names the version each event was built under.
    let trace = Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .args(["trace", "--contact", "demoContact00001", "--data-dir"])
        .arg(&data)
        .output()
        .expect("trace runs");
    let version = ghl_capi::ports::mappings::version_of(DEMO);
    assert!(
        said(&trace).contains(&format!("mapping={version}")),
        "{}",
        said(&trace)
    );
}
