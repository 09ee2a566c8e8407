//! What the operator's view costs with 10,000 events in the store: one status page
//! (its figures read and rendered, as `/status` does), one contact's trace, and
//! the audit journal's disk per 1,000 events. The page on an empty store, in the
//! same run, is the baseline.
//!
//! `cargo bench -p ghl-capi-local --bench status`

use std::time::{Duration, Instant};

use chrono::Utc;
use ghl_capi_local::journal::{Entry, Subject};
use ghl_capi_local::status::{Status, page};
use ghl_capi_local::store::Store;
use serde_json::{Value, json};

const EVENTS: usize = 10_000;
const RUNS: usize = 30;

fn entry(at_ms: i64, message: &str, fields: Value) -> Entry {
    Entry {
        at_ms,
        level: "INFO",
        message: message.into(),
        fields: fields.as_object().cloned().unwrap_or_default(),
    }
}

/// The lines one webhook's event writes, as `serve` logs them: its request, the
/// contact's read from GHL, the event built and sent; a Graph call per 100 events.
fn journey(i: usize, at_ms: i64) -> Vec<Entry> {
    let webhook = format!("65f1c2a0b9e4d3{i:010}");
    let contact = format!("aBcDeFgHiJ{i:010}");
    let event = format!("ghl-{:032x}", i as u128 * 0x9e37_79b9_7f4a_7c15);
    let mut lines = vec![
        entry(
            at_ms,
            "request",
            json!({"method": "POST", "path": "/webhooks/ghl", "status": 200,
            "outcome": "accepted", "webhook_id": webhook, "kind": "ContactTagUpdate"}),
        ),
        entry(
            at_ms + 40,
            "ghl call",
            json!({"location_id": "ve9EPM428h8vShlRW1KT", "status": 200,
            "latency_ms": 120, "remaining": 95}),
        ),
        entry(
            at_ms + 45,
            "event built",
            json!({"webhook_id": webhook, "location_id": "ve9EPM428h8vShlRW1KT",
            "contact_id": contact, "trigger": "contact.tag_added", "rule": "purchase-tag", "event_id": event,
            "event_name": "Purchase", "pixel": "main", "identifiers": "em ph fn ln ct zp country external_id fbc"}),
        ),
        entry(
            at_ms + 300,
            "event sent",
            json!({"pixel": "main", "event_id": event, "source": webhook,
            "rule": "purchase-tag", "fbtrace_id": "AbCdEfGhIjKlMnOpQrStU", "events_received": 100, "lag_seconds": 2}),
        ),
    ];
    if i.is_multiple_of(100) {
        lines.push(entry(
            at_ms + 290,
            "capi request",
            json!({"dataset_id": "123456789012345",
            "status": 200, "events": 100, "latency_ms": 180}),
        ));
    }
    lines
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn bytes_on_disk(path: &std::path::Path) -> u64 {
    let db = rusqlite::Connection::open(path).expect("open");
    db.pragma_update(None, "wal_checkpoint", "TRUNCATE")
        .expect("checkpoint");
    std::fs::metadata(path).expect("size").len()
}

fn page_time(runtime: &tokio::runtime::Runtime, store: &Store, locations: &[String]) -> Duration {
    let times = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            let status = runtime
                .block_on(Status::read(store, locations, &[], Utc::now()))
                .expect("figures");
            std::hint::black_box(page::render(&status));
            started.elapsed()
        })
        .collect();
    median(times)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("store.db");
    let store = Store::open(&path).expect("store");
    let locations = vec!["ve9EPM428h8vShlRW1KT".to_owned()];
    let empty_page = page_time(&runtime, &store, &locations);
    let empty_bytes = bytes_on_disk(&path);

    // The day's events, spread over its 24 hours.
    let now = Utc::now().timestamp_millis();
    let step = 86_400_000 / EVENTS as i64;
    let lines: Vec<Entry> = (0..EVENTS)
        .flat_map(|i| journey(i, now - 86_400_000 + i as i64 * step))
        .collect();
    for chunk in lines.chunks(1_000) {
        store.append_journal(chunk).expect("append");
    }
    let full_bytes = bytes_on_disk(&path);
    let full_page = page_time(&runtime, &store, &locations);
    let subject = Subject::Contact {
        contact_id: format!("aBcDeFgHiJ{:010}", EVENTS / 2),
        location_id: None,
    };
    let trace = median(
        (0..RUNS)
            .map(|_| {
                let started = Instant::now();
                let entries = store.journal_of(&subject, 0).expect("trace");
                assert_eq!(subject.journey(entries).len(), 3, "request, built, sent");
                started.elapsed()
            })
            .collect(),
    );
    let per_thousand = (full_bytes - empty_bytes) as f64 / (EVENTS as f64 / 1_000.0);
    println!(
        "status page, empty store:        {:>8.2} ms (baseline)",
        empty_page.as_secs_f64() * 1e3
    );
    println!(
        "status page, {EVENTS} events:     {:>8.2} ms ({:.1}× the baseline)",
        full_page.as_secs_f64() * 1e3,
        full_page.as_secs_f64() / empty_page.as_secs_f64()
    );
    println!(
        "trace of one contact:            {:>8.2} ms ({:.2}× the baseline)",
        trace.as_secs_f64() * 1e3,
        trace.as_secs_f64() / empty_page.as_secs_f64()
    );
    println!(
        "journal on disk: {} lines for {EVENTS} events, {:.0} KB per 1,000 events ({:.0} bytes a line)",
        lines.len(),
        per_thousand / 1024.0,
        (full_bytes - empty_bytes) as f64 / lines.len() as f64
    );
}
