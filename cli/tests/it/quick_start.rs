//! The README's quick start as a newcomer runs it: `serve --dev` on the built-in
//! mapping, then `demo send`. The demo pixel's request reaches the outbox, and the
//! first screen says once, as information, that the pixel runs dry: no warning for
//! what is expected.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::serve::{free_port, start_saying};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quick_start_sends_the_demo_lead_to_the_outbox_and_warns_of_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("ghl-capi-data");
    let said = dir.path().join("serve.out");
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_ghl-capi"));
    command
        .args(["serve", "--dev", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(&data)
        .env("ADMIN_LISTEN", "127.0.0.1:0")
        .env("RECONCILE_EVERY", "0")
        .env_remove("MAPPING_FILE")
        .env_remove("META_ACCESS_TOKEN")
        .env_remove("RUST_LOG");
    let server = start_saying(command, port, &said).await;

    let sent = Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
        .args(["demo", "send", "--to", &server.url])
        .stderr(Stdio::inherit())
        .output()
        .expect("demo send runs");
    let answer = String::from_utf8_lossy(&sent.stdout);
    assert!(
        sent.status.success() && answer.contains("accepted"),
        "{answer}"
    );

    let outbox = data.join("outbox.jsonl");
    let mut written = String::new();
    for _ in 0..100 {
        written = std::fs::read_to_string(&outbox).unwrap_or_default();
        if written.contains("\"Lead\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        written.contains("\"Lead\""),
        "the demo lead is in the outbox"
    );
    drop(server);

    let said = std::fs::read_to_string(&said).expect("what serve said");
    assert!(
        !said.contains("\"WARN\"") && !said.contains("\"ERROR\""),
        "a warning in the quick start:\n{said}"
    );
    assert_eq!(
        said.matches("no access token").count() + said.matches("no Meta token").count(),
        1,
        "the dry run is said once:\n{said}"
    );
}
