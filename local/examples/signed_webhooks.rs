//! Webhooks for a load test of `ghl-capi serve --dev`: `COUNT` contacts created, each
//! a new contact under a new webhook id, signed with the development key. One per
//! line, `signature<TAB>body`, for `bench/serve-load.sh`'s wrk script.
//!
//!     cargo run --release -p ghl-capi-local --example signed_webhooks -- 100000 > webhooks.tsv

use std::io::{BufWriter, Write};

use ghl_capi_local::dev;

fn main() -> std::io::Result<()> {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    // A run's webhook ids differ from the last run's, so a store kept between runs
    // takes every webhook as new.
    let run = chrono::Utc::now().timestamp_millis();
    let mut out = BufWriter::new(std::io::stdout().lock());
    for n in 0..count {
        let body = dev::new_contact(&format!("wh-load-{run}-{n}"), n, chrono::Utc::now());
        let text = String::from_utf8_lossy(&body);
        writeln!(out, "{}\t{text}", dev::sign(&body))?;
    }
    out.flush()
}
