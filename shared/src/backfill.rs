//! Contacts in, request bodies out: the `ghl-capi map` format, used for offline
//! previews and backfills. Streaming and constant-memory: contacts are read and
//! mapped in chunks, each chunk spread over worker threads, and written in input
//! order as `{"data":[…]}` lines of at most [`MAX_BATCH`] events.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::ops::Range;
use std::sync::{Arc, Mutex, mpsc};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Map;

use crate::capi::{MAX_BATCH, ServerEvent};
use crate::ghl::Contact;
use crate::mapping::{Mapping, Occurrence, Rule, Subject, Trigger};

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

/// Why contacts produced no event, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejections {
    pub count: u64,
    /// The first few input lines (1-based) it happened on, to find them again.
    pub first_lines: Vec<u64>,
    /// The message of the first occurrence.
    pub example: String,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub contacts: u64,
    pub events: u64,
    pub requests: u64,
    /// Contacts no rule matched (filters said no): not an error.
    pub unmatched: u64,
    /// Rejected events by reason code (`too_old`, `malformed_contact`, …).
    pub rejected: BTreeMap<&'static str, Rejections>,
}

impl Summary {
    /// Events that were not sent, all reasons together.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().map(|r| r.count).sum()
    }

    fn reject(&mut self, code: &'static str, line: u64, message: impl FnOnce() -> String) {
        let entry = self.rejected.entry(code).or_default();
        if entry.count == 0 {
            entry.example = message();
        }
        entry.count += 1;
        if entry.first_lines.len() < 5 {
            entry.first_lines.push(line);
        }
    }
}

/// What one input line became.
enum Mapped {
    Blank,
    Malformed(String),
    Events {
        /// Its entries in the chunk's `events` (one allocation per chunk, not per line).
        sent: Range<usize>,
        rejected: Vec<(&'static str, String)>,
    },
}

/// Bytes of input per chunk handed to a worker (cut at a line end): large enough to
/// amortise the hand-over, small enough that the chunks in flight stay a few megabytes.
const CHUNK: usize = 1 << 18;
/// Chunks in flight per worker (read ahead, or mapped and waiting to be written).
const IN_FLIGHT: usize = 2;

/// Parses one input line (a contact's JSON) into `contact`, which keeps the previous
/// line's allocations.
pub fn parse_contact_into(line: &[u8], contact: &mut Contact) -> Result<(), String> {
    // SIMD validation (under half of std's time in `map`'s profile); std only to say
    // where it fails.
    let text = simdutf8::basic::from_utf8(line)
        .or_else(|_| std::str::from_utf8(line))
        .map_err(|e| format!("not UTF-8 text: {e}"))?;
    // sonic-rs through the same serde impls: 0.73 µs into a reused contact, the
    // UTF-8 check above included, against serde_json's 0.81 µs without it
    // (per_contact bench).
    let mut parser = sonic_rs::Deserializer::from_str(text);
    Contact::deserialize_in_place(&mut parser, contact)
        .and_then(|()| parser.end())
        .map_err(|e| e.to_string())
}

/// A worker's contact, occurrences and event, filled again for every line so their
/// strings and lists are allocated once per worker, not once per contact.
#[derive(Default)]
struct Scratch {
    contact: Contact,
    occurrences: Vec<Occurrence>,
    event: ServerEvent,
}

fn map_line(
    mapping: &Mapping,
    opts: &MapOptions,
    line: &[u8],
    scratch: &mut Scratch,
    events: &mut Vec<Range<usize>>,
    buffer: &mut Vec<u8>,
) -> Mapped {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Mapped::Blank;
    }
    let Scratch {
        contact,
        occurrences,
        event,
    } = scratch;
    if let Err(why) = parse_contact_into(line, contact) {
        return Mapped::Malformed(why);
    }
    let location = contact.location_id.as_deref().unwrap_or_default();
    Occurrence::refill_for_contact_record(occurrences, opts.trigger, location, contact, opts.now);
    let related = Map::new();
    let first = events.len();
    let mut rejected = Vec::new();
    for occurrence in &*occurrences {
        // With `--pixel`, rules that feed only other pixels are not even built.
        let wanted = |rule: &Rule| match &opts.pixel {
            Some(pixel) => mapping
                .pixels_for(rule, &occurrence.location_id)
                .any(|p| &p.name == pixel),
            None => true,
        };
        let subject = Subject::new(contact, occurrence, &related);
        mapping.map_each(
            &subject,
            opts.now,
            event,
            wanted,
            |_, outcome| match outcome {
                Ok(event) => {
                    // sonic-rs again: 0.45 µs against serde_json's 0.78 µs (per_contact bench).
                    let start = buffer.len();
                    match sonic_rs::to_writer(&mut *buffer, event) {
                        Ok(()) => events.push(start..buffer.len()),
                        Err(e) => {
                            buffer.truncate(start);
                            rejected.push(("unserialisable", e.to_string()));
                        }
                    }
                }
                Err(why) => rejected.push((why.code(), why.to_string())),
            },
        );
    }
    Mapped::Events {
        sent: first..events.len(),
        rejected,
    }
}

/// Streams events into request bodies of up to [`MAX_BATCH`] events.
struct BodyWriter<W: Write> {
    out: W,
    /// Events in the body being written.
    in_body: usize,
    /// Request-level keys after `data` (`test_event_code`).
    suffix: String,
    requests: u64,
}

impl<W: Write> BodyWriter<W> {
    fn push(&mut self, event: &[u8]) -> io::Result<()> {
        self.out.write_all(if self.in_body == 0 {
            b"{\"data\":["
        } else {
            b","
        })?;
        self.out.write_all(event)?;
        self.in_body += 1;
        if self.in_body == MAX_BATCH {
            self.close_body()?;
        }
        Ok(())
    }

    fn close_body(&mut self) -> io::Result<()> {
        if self.in_body > 0 {
            self.out.write_all(b"]")?;
            self.out.write_all(self.suffix.as_bytes())?;
            self.out.write_all(b"}\n")?;
            self.in_body = 0;
            self.requests += 1;
        }
        Ok(())
    }
}

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

/// A chunk's lines, without their `\n` or `\r\n`; line ends are found with SIMD
/// (`memchr`): a byte-by-byte split took a twentieth of `map`'s time.
fn lines(chunk: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = chunk.strip_suffix(b"\n").unwrap_or(chunk);
    let mut start = 0;
    memchr::memchr_iter(b'\n', body)
        .chain([body.len()])
        .map(move |end| {
            let line = &body[start..end];
            start = end + 1;
            line.strip_suffix(b"\r").unwrap_or(line)
        })
}

/// Reads `input` in chunks of whole lines and hands them on, numbered. A line
/// longer than a chunk simply makes its chunk longer.
fn read_chunks(
    mut input: impl Read,
    chunks: &mpsc::SyncSender<(u64, Vec<u8>)>,
    spares: &mpsc::Receiver<Vec<u8>>,
) -> io::Result<()> {
    let mut carry = Vec::new();
    let mut index = 0;
    loop {
        // Recycled chunks keep their pages; a new one is sized so it never regrows
        // (each regrowth of a large buffer costs fresh, kernel-zeroed pages).
        let mut chunk = spares
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(2 * CHUNK));
        chunk.clear();
        chunk.append(&mut carry);
        // Up to a chunk's worth, read straight into spare capacity (never zeroed first).
        let read = (&mut input).take(CHUNK as u64).read_to_end(&mut chunk)?;
        if read > 0 {
            match memchr::memrchr(b'\n', &chunk) {
                Some(end) => carry.extend_from_slice(&chunk[end + 1..]),
                // No line end yet: keep reading into the same chunk.
                None => {
                    carry = chunk;
                    continue;
                }
            }
            chunk.truncate(chunk.len() - carry.len());
        }
        // A closed channel means the writer stopped on an error of its own.
        if chunk.is_empty() || chunks.send((index, chunk)).is_err() {
            break;
        }
        index += 1;
    }
    Ok(())
}

impl Summary {
    fn record<W: Write>(
        &mut self,
        mapped: Mapped,
        line: u64,
        events: &[Range<usize>],
        buffer: &[u8],
        writer: &mut BodyWriter<W>,
    ) -> io::Result<()> {
        match mapped {
            Mapped::Blank => {}
            Mapped::Malformed(why) => {
                self.contacts += 1;
                self.reject("malformed_contact", line, || why);
            }
            Mapped::Events { sent, rejected } => {
                self.contacts += 1;
                if sent.is_empty() && rejected.is_empty() {
                    self.unmatched += 1;
                }
                for (code, why) in rejected {
                    self.reject(code, line, || why);
                }
                for event in &events[sent] {
                    self.events += 1;
                    writer.push(&buffer[event.clone()])?;
                }
            }
        }
        Ok(())
    }
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
