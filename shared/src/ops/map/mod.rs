//! Contacts in, request bodies out: the `ghl-capi map` format, used for offline
//! previews and backfills. Streaming and constant-memory: contacts are read and
//! mapped in chunks, each chunk spread over worker threads, and written in input
//! order as `{"data":[…]}` lines of at most [`MAX_BATCH`](crate::capi::MAX_BATCH) events.
//!
//! - this module: the pipeline (a reader, mapping workers, the writer);
//! - [`input`]: reading whole lines in chunks;
//! - [`line`](mod@line): one contact mapped into reused buffers;
//! - [`output`]: request bodies written, and the summary.

mod input;
mod line;
mod output;

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::ops::Range;
use std::sync::{Arc, Mutex, mpsc};

use chrono::{DateTime, Utc};

use crate::mapping::{Mapping, Trigger};
use input::{lines, read_chunks};
pub use line::parse_contact_into;
use line::{Mapped, Scratch, map_line};
use output::BodyWriter;
pub use output::{Rejections, Summary};

/// How to map a stream of contacts.
#[derive(Debug, Clone)]
pub struct MapOptions {
    /// What happened to each contact (`contact.created` for a backfill of new leads).
    pub trigger: Trigger,
    /// Only events for this pixel, with its `test_event_code`; `None` keeps all.
    pub pixel: Option<String>,
    /// The time event times are judged against (Meta accepts the last 7 days).
    pub now: DateTime<Utc>,
    /// Mapping worker threads (besides a reader, and the calling thread, which writes).
    pub threads: usize,
}

/// Bytes of input per chunk handed to a worker (cut at a line end): large enough to
/// amortise the hand-over, small enough that the chunks in flight stay a few megabytes.
const CHUNK: usize = 1 << 18;
/// Chunks in flight per worker (read ahead, or mapped and waiting to be written).
const IN_FLIGHT: usize = 2;

/// One chunk, mapped: what each line became, and the events' JSON.
struct MappedChunk {
    lines: Vec<Mapped>,
    /// Where each serialised event lies in `buffer`.
    events: Vec<Range<usize>>,
    buffer: Vec<u8>,
}

/// Maps every contact (one `GET /contacts/{id}` object per line) read from `input`
/// and writes request bodies to `output`, in input order.
///
/// A reader thread, `opts.threads` mapping workers and the calling thread (the
/// writer) form a pipeline joined by bounded channels, so reading, mapping and
/// writing overlap while memory stays constant.
pub fn map_contacts(
    mapping: &Mapping,
    opts: &MapOptions,
    input: impl Read + Send,
    output: impl Write,
) -> io::Result<Summary> {
    let suffix = opts
        .pixel
        .as_ref()
        .and_then(|name| mapping.pixels.iter().find(|p| &p.name == name))
        .and_then(|p| p.test_event_code.as_ref())
        .map(|code| {
            format!(
                ",\"test_event_code\":{}",
                serde_json::Value::from(code.as_str())
            )
        })
        .unwrap_or_default();
    let mut writer = BodyWriter {
        out: output,
        in_body: 0,
        suffix,
        requests: 0,
    };
    let workers = opts.threads.max(1);
    let (chunk_tx, chunk_rx) = mpsc::sync_channel::<(u64, Vec<u8>)>(workers * IN_FLIGHT);
    // Shared by the workers; when the last one stops (the writer failed), the
    // receiver goes with it and the reader's next send fails instead of blocking.
    let chunk_rx = Arc::new(Mutex::new(chunk_rx));
    let (done_tx, done_rx) = mpsc::sync_channel::<(u64, MappedChunk)>(workers * IN_FLIGHT);
    // Buffers go back to be reused, so pages are not faulted in afresh per chunk.
    let (spare_chunk_tx, spare_chunk_rx) = mpsc::channel::<Vec<u8>>();
    let (spare_buffer_tx, spare_buffer_rx) = mpsc::channel::<Vec<u8>>();
    let spare_buffer_rx = Mutex::new(spare_buffer_rx);
    let mut summary = Summary::default();

    std::thread::scope(|scope| -> io::Result<()> {
        let reader = scope.spawn(move || read_chunks(input, &chunk_tx, &spare_chunk_rx));
        for _ in 0..workers {
            let chunk_rx = Arc::clone(&chunk_rx);
            let (done_tx, spare_chunk_tx, spare_buffer_rx) =
                (done_tx.clone(), spare_chunk_tx.clone(), &spare_buffer_rx);
            scope.spawn(move || {
                let mut scratch = Scratch::default();
                loop {
                    // The lock is held only while taking the next chunk.
                    let next = match chunk_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => break,
                    };
                    let Ok((index, chunk)) = next else { break };
                    let mut buffer = spare_buffer_rx
                        .lock()
                        .ok()
                        .and_then(|rx| rx.try_recv().ok())
                        .unwrap_or_else(|| Vec::with_capacity(2 * CHUNK));
                    buffer.clear();
                    let mut events = Vec::new();
                    let lines = lines(&chunk)
                        .map(|line| {
                            map_line(mapping, opts, line, &mut scratch, &mut events, &mut buffer)
                        })
                        .collect();
                    let _ = spare_chunk_tx.send(chunk);
                    if done_tx
                        .send((
                            index,
                            MappedChunk {
                                lines,
                                events,
                                buffer,
                            },
                        ))
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
        drop((done_tx, spare_chunk_tx, chunk_rx));

        // Chunks finish out of order; early ones wait for their turn.
        let mut waiting = BTreeMap::new();
        let mut next = 0u64;
        let mut line_no = 0u64;
        for (index, mapped) in done_rx {
            waiting.insert(index, mapped);
            while let Some(chunk) = waiting.remove(&next) {
                let MappedChunk {
                    lines,
                    events,
                    buffer,
                } = chunk;
                next += 1;
                for one in lines {
                    line_no += 1;
                    summary.record(one, line_no, &events, &buffer, &mut writer)?;
                }
                let _ = spare_buffer_tx.send(buffer);
            }
        }
        match reader.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })?;
    writer.close_body()?;
    writer.out.flush()?;
    summary.requests = writer.requests;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(id: &str, padding: usize) -> String {
        serde_json::json!({
            "id": id, "email": format!("{id}@example.com"), "dateAdded": "2026-11-20T10:00:00Z",
            "notes": "x".repeat(padding)
        })
        .to_string()
    }

    fn run(input: &str, threads: usize) -> (Summary, Vec<serde_json::Value>) {
        let opts = MapOptions {
            trigger: Trigger::ContactCreated,
            pixel: None,
            now: "2026-11-20T11:00:00Z".parse().expect("time"),
            threads,
        };
        let mut out = Vec::new();
        let summary =
            map_contacts(&Mapping::builtin(), &opts, input.as_bytes(), &mut out).expect("maps");
        let bodies = String::from_utf8(out)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        (summary, bodies)
    }

    #[test]
    fn long_lines_crlf_and_a_last_line_without_newline_are_all_read_in_order() {
        let input = format!(
            "{}\r\n\n{}\n{}",
            contact("a", 0),
            contact("b", CHUNK + CHUNK / 2),
            contact("c", 0)
        );
        for threads in [1, 2] {
            let (summary, bodies) = run(&input, threads);
            assert_eq!(
                (summary.contacts, summary.events, summary.requests),
                (3, 3, 1)
            );
            let ids: Vec<&str> = bodies[0]["data"]
                .as_array()
                .expect("data")
                .iter()
                .map(|e| e["user_data"]["em"][0].as_str().expect("hash"))
                .collect();
            let expected: Vec<String> = ["a", "b", "c"]
                .iter()
                .map(|id| crate::normalize::sha256_hex(&format!("{id}@example.com")).to_string())
                .collect();
            assert_eq!(ids, expected);
        }
    }

    #[test]
    fn bodies_hold_a_thousand_events_in_input_order_across_chunks() {
        let count = 2500;
        let mut input: String = (0..count)
            .map(|i| contact(&format!("c{i}"), 100) + "\n")
            .collect();
        // A rejected and a malformed line between events: neither leaves a gap.
        input.insert_str(
            0,
            "{\"id\": \"old\", \"dateAdded\": \"2020-01-01T00:00:00Z\"}\nnot json\n",
        );
        assert!(input.len() > CHUNK, "spans chunks");
        for threads in [1, 2] {
            let (summary, bodies) = run(&input, threads);
            assert_eq!((summary.events, summary.requests), (count, 3));
            assert_eq!(summary.rejected_total(), 2);
            let hashes: Vec<Vec<String>> = bodies
                .iter()
                .map(|body| {
                    body["data"]
                        .as_array()
                        .expect("data")
                        .iter()
                        .map(|e| e["user_data"]["em"][0].as_str().expect("hash").to_owned())
                        .collect()
                })
                .collect();
            assert_eq!(
                hashes.iter().map(Vec::len).collect::<Vec<_>>(),
                [1000, 1000, 500]
            );
            let expected =
                |i: u64| crate::normalize::sha256_hex(&format!("c{i}@example.com")).to_string();
            for (body, first) in hashes.iter().zip([0, 1000, 2000]) {
                for (offset, hash) in body.iter().enumerate() {
                    assert_eq!(hash, &expected(first + offset as u64));
                }
            }
        }
    }

    #[test]
    fn lines_are_split_at_each_newline_without_line_ends() {
        let split = |text: &str| -> Vec<String> {
            lines(text.as_bytes())
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect()
        };
        assert_eq!(split(""), [""]);
        assert_eq!(split("\n"), [""]);
        assert_eq!(split("a"), ["a"]);
        assert_eq!(split("a\n"), ["a"]);
        assert_eq!(split("a\r\nb"), ["a", "b"]);
        assert_eq!(split("a\n\nb\r\n"), ["a", "", "b"]);
        assert_eq!(split("\n\n"), ["", ""]);
    }

    #[test]
    fn invalid_utf8_and_malformed_lines_are_counted_with_their_line_numbers() {
        let mut input = contact("a", 0).into_bytes();
        input.extend_from_slice(b"\n{\"id\": \"\xff\"}\n[1]\n");
        let opts = MapOptions {
            trigger: Trigger::ContactCreated,
            pixel: None,
            now: "2026-11-20T11:00:00Z".parse().expect("time"),
            threads: 1,
        };
        let summary =
            map_contacts(&Mapping::builtin(), &opts, input.as_slice(), io::sink()).expect("maps");
        let malformed = &summary.rejected["malformed_contact"];
        assert_eq!((summary.events, malformed.count), (1, 2));
        assert_eq!(malformed.first_lines, [2, 3]);
        assert!(malformed.example.contains("UTF-8"), "{}", malformed.example);
    }
}
