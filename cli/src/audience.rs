//! Audiences on the command line: what `mapping preview` shows of them (which
//! audiences a body makes its contact join or leave, and its row, key by key).

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use ghl_capi::ghl::Contact;
use ghl_capi::mapping::audience::{RowKey, row_keys};
use ghl_capi::mapping::{Mapping, Occurrence};
use serde_json::{Value, json};

/// What the previewed body does to one audience's membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Move {
    Joins,
    Leaves,
    StaysIn,
    StaysOut,
    /// The body says nothing of what makes a member (a condition on another kind
    /// of change, or tags a workflow call does not carry).
    Unknown,
}

impl Move {
    fn words(self) -> &'static str {
        match self {
            Move::Joins => "joins",
            Move::Leaves => "leaves",
            Move::StaysIn => "stays a member",
            Move::StaysOut => "stays out",
            Move::Unknown => "unchanged: this body says nothing of its membership",
        }
    }
}

/// What a previewed body shows of its contact.
#[derive(Debug)]
pub(crate) struct Judged<'a> {
    pub(crate) contact: &'a Contact,
    pub(crate) occurrences: &'a [Occurrence],
    pub(crate) location: &'a str,
    pub(crate) now: DateTime<Utc>,
    /// A `ContactDelete` webhook: the contact leaves every audience.
    pub(crate) deleted: bool,
    /// Whether the contact carries all its tags.
    pub(crate) tags_known: bool,
}

/// Each audience of the body's location, and what the body does to it.
pub(crate) fn memberships<'m>(
    mapping: &'m Mapping,
    read: &Judged<'_>,
    member_of: Option<&str>,
) -> Vec<(&'m str, &'m str, Move)> {
    let was: Vec<&str> = member_of
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .collect();
    mapping
        .audiences
        .iter()
        .filter(|a| a.serves(read.location))
        .map(|a| {
            let judged = if read.deleted {
                Some(false)
            } else if a.entity().is_none() && !read.tags_known {
                None
            } else {
                a.judge(read.contact, read.occurrences, read.location, read.now)
            };
            let member = was.contains(&a.name.as_str());
            let moved = match (judged, member) {
                (None, _) => Move::Unknown,
                (Some(true), false) => Move::Joins,
                (Some(true), true) => Move::StaysIn,
                (Some(false), true) => Move::Leaves,
                (Some(false), false) => Move::StaysOut,
            };
            (a.name.as_str(), a.audience_id.as_str(), moved)
        })
        .collect()
}

pub(crate) fn audiences_text(contact: &Contact, members: &[(&str, &str, Move)]) -> String {
    if members.is_empty() {
        return String::new();
    }
    let mut t = String::from("\naudiences:\n");
    for (name, id, moved) in members {
        let _ = writeln!(t, "  {name} ({id}): {}", moved.words());
    }
    if members
        .iter()
        .any(|(_, _, m)| matches!(m, Move::Joins | Move::Leaves))
    {
        t.push_str("  row (raw → normalised → sent)\n");
        for RowKey {
            key,
            input,
            normalized,
            value,
        } in row_keys(contact)
        {
            let sent = if value.is_empty() {
                "-"
            } else {
                value.as_str()
            };
            let _ = writeln!(
                t,
                "    {key:<10} {input:?} → {} → {sent}",
                normalized.as_deref().unwrap_or("(dropped)")
            );
        }
    }
    t
}

pub(crate) fn audiences_json(contact: &Contact, members: &[(&str, &str, Move)]) -> Value {
    let row: Vec<Value> = row_keys(contact)
        .into_iter()
        .map(|k| json!({"key": k.key, "input": k.input, "normalized": k.normalized, "sha256": k.value}))
        .collect();
    json!(
        members
            .iter()
            .map(
                |(name, id, moved)| json!({"audience": name, "audienceId": id,
            "change": format!("{moved:?}").to_lowercase(), "row": row})
            )
            .collect::<Vec<_>>()
    )
}
