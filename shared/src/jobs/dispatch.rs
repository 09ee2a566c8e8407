//! The dispatch queue's wire format: an event for one pixel ([`DispatchJob`]), or an
//! audience change ([`AudienceJob`]), told apart as [`DispatchMessage`].

use serde::{Deserialize, Serialize};

use chrono::{DateTime, Utc};

use super::{After, DeadLetter, Held, History, WriteBack, WriteBackJob};
use crate::capi::ServerEvent;
use crate::capi::audience::Row;

/// One event for one pixel, as queued for dispatch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DispatchJob {
    /// The pixel's name in the mapping.
    pub pixel: String,
    /// The job it came from (its idempotency key), for tracing.
    pub source: String,
    pub rule: String,
    /// The trigger that made the event (`contact.created`, …).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trigger: String,
    /// The location and contact the event is about: with the rule, whose event it
    /// is ([`DispatchJob::owner`]). Empty in jobs queued by builds before them.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub location_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub contact_id: String,
    pub event: ServerEvent,
    /// The version of the mapping that built it: it is sent as built, whatever
    /// version runs when it is. Empty in jobs queued by builds before versions.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mapping: String,
    /// What it has been through while Meta could not take it (queued with it).
    #[serde(default, skip_serializing_if = "History::is_empty")]
    pub history: History,
    /// What its rule writes back into GHL once Meta takes it, or it is lettered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_back: Option<WriteBack>,
}

impl DispatchJob {
    /// Whose event this is: its location, contact and rule. Meta keeps one event
    /// per dataset, name and id; two jobs with those alike are one event only when
    /// their owners are alike too (a redelivery, or reconciliation finding a change
    /// its webhook brought as well). A job from an older build names its source.
    pub fn owner(&self) -> String {
        if self.location_id.is_empty() && self.contact_id.is_empty() {
            format!("{}/{}", self.source, self.rule)
        } else {
            format!("{}/{}/{}", self.location_id, self.contact_id, self.rule)
        }
    }
}

/// What its rule writes back into GHL ([`super::write_back`]).
impl DispatchJob {
    /// The write-back of its event, which Meta took (its score in hundredths):
    /// one per event, whichever of its pixels took it first.
    pub fn written_back(&self, score: u16, at: DateTime<Utc>) -> Option<WriteBackJob> {
        let write = self.write_back.as_ref().filter(|w| w.on_sent())?;
        let key = format!(
            "{}:{}:write_back:{}:{}",
            self.location_id,
            self.contact_id,
            self.event.event_name,
            self.event.event_id.as_deref().unwrap_or_default()
        );
        Some(self.writing(key, write, at, After::Sent { score }))
    }

    /// The task of its event lettered as `letter` says: one per contact and cause
    /// (the letter's code).
    pub fn tasked(&self, letter: &DeadLetter, now: DateTime<Utc>) -> Option<WriteBackJob> {
        let write = self.write_back.as_ref().filter(|w| w.task_on_dead_letter)?;
        let key = format!(
            "{}:{}:write_back_task:{}",
            self.location_id, self.contact_id, letter.code
        );
        let after = After::Lettered {
            code: letter.code.clone(),
            reason: letter.reason.clone(),
        };
        Some(self.writing(key, write, letter.at.unwrap_or(now), after))
    }

    fn writing(
        &self,
        key: String,
        write: &WriteBack,
        at: DateTime<Utc>,
        after: After,
    ) -> WriteBackJob {
        WriteBackJob {
            key,
            location_id: self.location_id.clone(),
            contact_id: self.contact_id.clone(),
            source: self.source.clone(),
            rule: self.rule.clone(),
            event_name: self.event.event_name.clone(),
            event_id: self.event.event_id.clone().unwrap_or_default(),
            at,
            write: write.clone(),
            after,
        }
    }
}

impl Held for DispatchJob {
    fn history(&self) -> &History {
        &self.history
    }
}

/// One change of one contact's membership of one audience, as queued for
/// dispatch beside the events (`reference/meta-capi.md` §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudienceJob {
    /// The audience's name in the mapping.
    pub audience: String,
    /// The job it came from (its idempotency key), for tracing.
    pub source: String,
    pub location_id: String,
    pub contact_id: String,
    /// One more than this contact's previous change of this audience: dispatch
    /// applies them in this order, whatever order the queue gives them in.
    pub seq: u64,
    /// Rows to take out (the contact's row as last sent), before `add`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<Row>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add: Option<Row>,
    #[serde(default, skip_serializing_if = "History::is_empty")]
    pub history: History,
    /// Brings the contact in step rather than waiting its turn: dispatch sends the
    /// contact's current membership (as the state store holds it) and settles
    /// every change up to it. Set on a change an operator redrove from the
    /// dead-letter queue (its `seq` may have been passed over since), and on a
    /// sync's change of a contact whose changes have a gap.
    #[serde(
        default,
        alias = "redriven",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub resync: bool,
}

impl Held for AudienceJob {
    fn history(&self) -> &History {
        &self.history
    }
}

/// A message of the dispatch queue: an event, or an audience change.
#[derive(Debug, Clone, PartialEq)]
pub enum DispatchMessage {
    Event(Box<DispatchJob>),
    Audience(Box<AudienceJob>),
}

impl DispatchMessage {
    /// Reads a dispatch queue message: an audience change names its audience.
    pub fn parse(body: &str) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Kind {
            #[serde(default)]
            audience: Option<serde::de::IgnoredAny>,
        }
        match serde_json::from_str::<Kind>(body)?.audience {
            Some(_) => {
                serde_json::from_str(body).map(|job| DispatchMessage::Audience(Box::new(job)))
            }
            None => serde_json::from_str(body).map(DispatchMessage::Event),
        }
    }
}
