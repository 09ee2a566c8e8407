//! Delivery written back into GHL: what a rule asks for ([`WriteBack`], carried by
//! each of its dispatch jobs, so an event's write-back is the one it was built
//! with), and the job dispatch queues for enrichment once Meta took the event or
//! it became a letter ([`WriteBackJob`]). Enrichment makes the GHL calls, with its
//! client and rate budget.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What every note and task the write-back makes ends with: enrichment knows its
/// own by it, so they fire no `note.created` or `task.created` rule.
pub const SIGNATURE: &str = "(ghl-capi)";

/// What a rule writes back into GHL about its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteBack {
    /// Added once Meta takes the event (`capi:Lead`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Custom fields set once Meta takes the event: what, and the field's key
    /// (`contact.capi_sent_at`) or id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<(Written, String)>,
    /// A note once Meta takes the event.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub note: bool,
    /// One task on the contact when its event becomes a letter, once per cause.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub task_on_dead_letter: bool,
    /// The contact as the event was built from it ([`crate::ghl::Contact::shape`]):
    /// a `ContactUpdate` that shows it so, with the values written, is the echo of
    /// this write.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub shape: String,
}

/// What it writes, as `mapping check` says it: `tag capi:Lead, score into
/// contact.capi_score, a note, a task per letter's cause`.
impl std::fmt::Display for WriteBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tag = self.tag.iter().map(|tag| format!("tag {tag}"));
        let fields =
            (self.fields.iter()).map(|(what, field)| format!("{} into {field}", what.name()));
        let note = self.note.then(|| "a note".to_owned());
        let task = (self.task_on_dead_letter).then(|| "a task per letter's cause".to_owned());
        let parts: Vec<String> = tag.chain(fields).chain(note).chain(task).collect();
        f.write_str(&parts.join(", "))
    }
}

impl WriteBack {
    /// Whether anything is written once Meta takes the event.
    pub fn on_sent(&self) -> bool {
        self.tag.is_some() || !self.fields.is_empty() || self.note
    }
}

/// A value a write-back sets in a custom field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Written {
    /// When Meta took the event (ISO-8601, UTC).
    SentAt,
    EventId,
    EventName,
    /// The event's identifier coverage score, 0–10 with one decimal.
    Score,
}

impl Written {
    pub const ALL: [(Written, &'static str); 4] = [
        (Written::SentAt, "sent_at"),
        (Written::EventId, "event_id"),
        (Written::EventName, "event_name"),
        (Written::Score, "score"),
    ];

    pub fn name(self) -> &'static str {
        Written::ALL
            .iter()
            .find(|(w, _)| *w == self)
            .map_or("", |(_, n)| n)
    }
}

/// What happened to the event the write-back is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "after", rename_all = "snake_case")]
pub enum After {
    /// Meta took it; its score in hundredths.
    Sent { score: u16 },
    /// It became a letter with this code and cause.
    Lettered { code: String, reason: String },
}

/// A write-back as queued for enrichment ([`super::DispatchJob::written_back`],
/// [`super::DispatchJob::tasked`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteBackJob {
    /// Its idempotency key: one per event, or per contact and cause of a letter.
    pub key: String,
    pub location_id: String,
    pub contact_id: String,
    /// The webhook or call the event came from, for tracing.
    pub source: String,
    pub rule: String,
    pub event_name: String,
    pub event_id: String,
    /// When Meta took the event, or it was lettered.
    pub at: DateTime<Utc>,
    pub write: WriteBack,
    #[serde(flatten)]
    pub after: After,
}

impl WriteBackJob {
    /// Its FIFO group: the contact's write-backs in order, beside (never behind)
    /// the contact's own changes, so one held for GHL's budget holds no change.
    pub fn group_id(&self) -> String {
        format!("{}:{}:write_back", self.location_id, self.contact_id)
    }
}
