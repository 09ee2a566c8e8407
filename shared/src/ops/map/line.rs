//! One input line (a contact) mapped to its events, into a worker's reused buffers.

use std::ops::Range;

use serde::Deserialize;
use serde_json::Map;

use super::MapOptions;
use crate::capi::ServerEvent;
use crate::ghl::Contact;
use crate::mapping::{Mapping, Occurrence, Rule, Subject, Trigger};

/// What one input line became.
pub(super) enum Mapped {
    Blank,
    Malformed(String),
    Events {
        /// Its entries in the chunk's `events` (one allocation per chunk, not per line).
        sent: Range<usize>,
        rejected: Vec<(&'static str, String)>,
    },
}

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
pub(super) struct Scratch {
    contact: Contact,
    occurrences: Vec<Occurrence>,
    event: ServerEvent,
}

pub(super) fn map_line(
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
    // A new contact's tags count as added, when some rule listens for that.
    let with_tags = mapping.rules_for(Trigger::TagAdded).next().is_some();
    let trigger = (opts.trigger, with_tags);
    Occurrence::refill_for_contact_record(occurrences, trigger, location, contact, opts.now);
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
