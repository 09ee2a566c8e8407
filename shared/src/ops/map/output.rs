//! What `map` writes: request bodies of up to [`MAX_BATCH`] events, and the
//! summary of what each line became.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::ops::Range;

use super::line::Mapped;
use crate::capi::MAX_BATCH;

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

/// Streams events into request bodies of up to [`MAX_BATCH`] events.
pub(super) struct BodyWriter<W: Write> {
    pub(super) out: W,
    /// Events in the body being written.
    pub(super) in_body: usize,
    /// Request-level keys after `data` (`test_event_code`).
    pub(super) suffix: String,
    pub(super) requests: u64,
}

impl<W: Write> BodyWriter<W> {
    pub(super) fn push(&mut self, event: &[u8]) -> io::Result<()> {
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

    pub(super) fn close_body(&mut self) -> io::Result<()> {
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

impl Summary {
    pub(super) fn record<W: Write>(
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
