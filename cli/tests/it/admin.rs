//! The operator's listener as `serve` starts it: two `serve`s on one machine (two
//! data directories) both start with the defaults, each saying where its status
//! page is.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::serve::{Server, free_port, mapping_text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serves_with_the_default_admin_address_both_start_and_say_where() {
    let dir = tempfile::tempdir().expect("dir");
    let mapping = dir.path().join("mapping.toml");
    std::fs::write(&mapping, mapping_text()).expect("mapping written");
    let mut pages = Vec::new();
    let mut servers = Vec::new();
    for data in ["one", "two"] {
        let port = free_port();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ghl-capi"))
            .args(["serve", "--dev", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir.path().join(data))
            .arg("--mapping")
            .arg(&mapping)
            .env("RECONCILE_EVERY", "0")
            .env_remove("ADMIN_LISTEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let page = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| {
                let at = line.split("status page: ").nth(1)?;
                Some(at.split(',').next()?.to_owned())
            })
            .expect("it says where its status page is");
        servers.push(Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
        });
        pages.push(page);
    }
    assert_ne!(pages[0], pages[1], "{pages:?}");
    for (server, page) in servers.iter().zip(&pages) {
        let health = reqwest::get(format!("{}/health", server.url)).await;
        assert_eq!(health.expect("up").status(), 200);
        let status = reqwest::get(page).await.expect("answered");
        assert_eq!(status.status(), 200, "{page}");
    }
}
