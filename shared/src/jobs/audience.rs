//! The audience side of the queues: a membership change as queued for dispatch
//! ([`AudienceJob`], beside events in [`DispatchMessage`]), and a contact as an
//! operator's listing found it, queued for enrichment ([`ListedJob`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{DispatchJob, Held, History};
use crate::capi::audience::Row;
use crate::ghl::Contact;

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

/// A contact as `audience sync` or reconciliation listed it, for enrichment to bring each audience's
/// membership in step: with the contact as GHL's search gave it (all its tags),
/// or without, for a member the listing no longer returned (enrichment reads it;
/// a contact GHL no longer has leaves every audience).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListedJob {
    /// `{location}:{contact}:listed:{listing}`: one listing's job per contact.
    pub key: String,
    pub received_at: DateTime<Utc>,
    pub location_id: String,
    pub contact_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Box<Contact>>,
    /// Set by reconciliation: the start of the window it listed. Enrichment then
    /// finds the changes no webhook delivered, as the webhooks would have told them
    /// ([`crate::mapping::Occurrence::missed`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Set by a backfill: the contact is sent as a new contact, with its tags
    /// added, through these rules (all when empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<Vec<String>>,
    /// Set by a sync for a contact whose audience changes have a gap: its
    /// membership is sent as it stands, even unchanged ([`AudienceJob::resync`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resync: bool,
}

impl ListedJob {
    /// The job of listing `listing` for one contact.
    pub fn new(
        listing: &str,
        location_id: &str,
        contact_id: &str,
        contact: Option<Contact>,
        received_at: DateTime<Utc>,
    ) -> Self {
        ListedJob {
            key: format!("{location_id}:{contact_id}:listed:{listing}"),
            received_at,
            location_id: location_id.to_owned(),
            contact_id: contact_id.to_owned(),
            contact: contact.map(Box::new),
            since: None,
            backfill: None,
            resync: false,
        }
    }

    /// Whether the job sends `rule`'s events (a backfill names the rules it sends).
    pub fn sends(&self, rule: &str) -> bool {
        self.backfill
            .as_ref()
            .is_none_or(|rules| among(rules, rule))
    }

    /// The job of a backfill's `listing` for one contact, sent through `rules`.
    pub fn backfilled(
        listing: &str,
        location_id: &str,
        contact: Contact,
        rules: &[String],
        received_at: DateTime<Utc>,
    ) -> Self {
        ListedJob {
            key: format!("{location_id}:{}:{listing}", contact.id),
            backfill: Some(rules.to_vec()),
            ..ListedJob::new(
                listing,
                location_id,
                &contact.id.clone(),
                Some(contact),
                received_at,
            )
        }
    }

    /// The job of a contact reconciliation listed as changed in the window from
    /// `since`; one per change of the contact (its change time), so a change
    /// listed twice is queued once.
    pub fn reconciled(
        location_id: &str,
        contact: Contact,
        since: DateTime<Utc>,
        received_at: DateTime<Utc>,
    ) -> Self {
        let change = contact.date_updated.clone().unwrap_or_default();
        ListedJob {
            key: format!("{location_id}:{}:reconciled:{change}", contact.id),
            received_at,
            location_id: location_id.to_owned(),
            contact_id: contact.id.clone(),
            contact: Some(Box::new(contact)),
            since: Some(since),
            backfill: None,
            resync: false,
        }
    }
}

/// Whether `rule` is one of `rules` (all are when it is empty).
pub fn among(rules: &[String], rule: &str) -> bool {
    rules.is_empty() || rules.iter().any(|r| r == rule)
}
