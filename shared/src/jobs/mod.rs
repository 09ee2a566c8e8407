//! The wire formats between stages, in one place, a file per queue: what intake
//! (and the pull side) queues for enrichment ([`enrich`]: [`EnrichJob`], with the
//! opportunities' jobs in [`opportunity`]), what enrichment queues for dispatch
//! ([`dispatch`]: events and audience changes), and what either writes to a
//! dead-letter queue ([`letter`]). Each is JSON on a queue; changing a field here
//! changes it for every stage at once. This module keeps what they share: a held
//! job's history, the stage a message belongs to, the size limits.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub mod dispatch;
pub mod enrich;
pub mod letter;
pub mod opportunity;
pub mod write_back;

pub use dispatch::{AudienceJob, DispatchJob, DispatchMessage};
pub use enrich::{
    ConversionJob, EnrichJob, ListedJob, PostedConversion, StaleWebhook, WorkflowJob,
};
pub use letter::{DeadLetter, LetterMessage};
pub use opportunity::{Backfilled, OpportunityJob, SeenOpportunity};
pub use write_back::{After, WriteBack, WriteBackJob, Written};

/// What a held piece of work has been through: kept with it while it is held, and
/// in its dead letter if it becomes one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// Failed tries so far.
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<DateTime<Utc>>,
    /// The last failure's code (`meta_unavailable`, `ghl_unavailable`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_code: Option<String>,
    /// The last failure, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_cause: Option<String>,
}

impl History {
    pub fn is_empty(&self) -> bool {
        *self == History::default()
    }

    /// Counts one more failure, with its code and cause, at `now`.
    pub fn failed(&mut self, code: &str, cause: &str, now: DateTime<Utc>) {
        self.attempts += 1;
        self.first_failure.get_or_insert(now);
        self.last_failure = Some(now);
        self.last_code = Some(code.to_owned());
        self.last_cause = Some(cause.to_owned());
    }

    /// How long it has been held, as of `now`.
    pub fn held_for(&self, now: DateTime<Utc>) -> chrono::Duration {
        self.first_failure
            .map_or_else(chrono::Duration::zero, |first| now - first)
    }
}

/// A job that carries its own history on its queue (dispatch's: held jobs go
/// back on it).
pub trait Held: Serialize {
    fn history(&self) -> &History;
}

/// The largest message any of our queues takes: each queue's `MaximumMessageSize`
/// (the template sets it: SQS allows up to 1 MiB, though a queue defaults to
/// 256 KiB), and the limit every other limit derives from.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// What a letter adds to the job it carries, at most (its reason is cut to fit).
pub const LETTER_ROOM: usize = 16 << 10;
/// The largest job a stage queues: so large a job still fits a message as a
/// letter, so no job is ever too large to become one.
pub const MAX_JOB_BYTES: usize = MAX_MESSAGE_BYTES - LETTER_ROOM;
/// The stage, and queue, a job belongs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Enrich,
    Dispatch,
}

impl Stage {
    /// The stage a queued message is a job of, if it is one of ours.
    pub fn of(message: &str) -> Option<Stage> {
        if serde_json::from_str::<EnrichJob>(message).is_ok() {
            Some(Stage::Enrich)
        } else if DispatchMessage::parse(message).is_ok() {
            Some(Stage::Dispatch)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Stage::Enrich => "enrich",
            Stage::Dispatch => "dispatch",
        }
    }
}

/// Whether `rule` is one of `rules` (all are when it is empty).
pub fn among(rules: &[String], rule: &str) -> bool {
    rules.is_empty() || rules.iter().any(|r| r == rule)
}

/// FIFO group: one contact's changes stay in order; other contacts run in parallel.
pub fn group_id(location_id: &str, contact_id: Option<&str>) -> String {
    match contact_id {
        Some(contact) => format!("{location_id}:{contact}"),
        None => location_id.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_message_is_known_by_the_stage_it_belongs_to() {
        let webhook = json!({"kind": "webhook", "key": "wh-1", "received_at": "2026-11-20T10:00:00Z",
            "body": json!({"type": "ContactCreate", "locationId": "loc", "id": "c1"}).to_string()});
        assert_eq!(Stage::of(&webhook.to_string()), Some(Stage::Enrich));
        let dispatch = json!({"pixel": "main", "source": "wh-1", "rule": "lead",
            "event": {"event_name": "Lead", "event_time": 1, "action_source": "system_generated", "user_data": {}}});
        assert_eq!(Stage::of(&dispatch.to_string()), Some(Stage::Dispatch));
        let audience = json!({"audience": "vips", "source": "wh-1", "location_id": "loc",
            "contact_id": "c1", "seq": 2, "remove": [["a", "b"]], "add": ["c", "d"]});
        assert_eq!(Stage::of(&audience.to_string()), Some(Stage::Dispatch));
        assert!(matches!(
            DispatchMessage::parse(&audience.to_string()),
            Ok(DispatchMessage::Audience(job)) if job.seq == 2
        ));
        assert_eq!(Stage::of("not a job"), None);
    }
}
