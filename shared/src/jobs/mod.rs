//! The wire formats between stages, in one place: what intake queues for enrichment
//! ([`EnrichJob`]), what enrichment queues for dispatch ([`DispatchJob`]), and what
//! either writes to a dead-letter queue ([`LetterMessage`]). Each is JSON on a queue;
//! changing a field here changes it for every stage at once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::capi::ServerEvent;
use crate::ghl::webhook::Webhook;
use crate::ports::queue::Outgoing;

mod audience;
mod letter;
mod opportunity;

pub use audience::{AudienceJob, DispatchMessage, ListedJob, among};
pub use letter::{DeadLetter, LetterMessage};
pub use opportunity::{Backfilled, OpportunityJob, SeenOpportunity};

/// Work for the enrichment stage, as queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EnrichJob {
    /// A verified webhook, kept as the exact text received.
    Webhook {
        /// The idempotency key (`webhookId`, or a digest of the body).
        key: String,
        received_at: DateTime<Utc>,
        body: String,
    },
    /// A conversion posted to `/contacts/{contactId}/conversions`.
    Conversion(ConversionJob),
    /// A call of a GHL workflow action to `/workflows/ghl`.
    Workflow(WorkflowJob),
    /// A contact as a listing found it (`audience sync`, reconciliation).
    Listed(ListedJob),
    /// An opportunity reconciliation found changed, or a backfill listed.
    Opportunity(OpportunityJob),
    /// A verified webhook GHL delivered later than the replay window allows (a
    /// resend from GHL's webhook log, a long retry tail): kept for a person, never
    /// acted on by itself. Enrichment letters it (`stale_delivery`); a redrive
    /// queues it as the webhook it is.
    Stale(StaleWebhook),
}

/// A webhook delivered late, as queued: the webhook job, and how late.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaleWebhook {
    pub key: String,
    pub received_at: DateTime<Utc>,
    pub body: String,
    /// How long after GHL sent it it arrived, and how long the window allows.
    pub age_seconds: i64,
    pub max_age_seconds: i64,
}

impl StaleWebhook {
    /// The webhook job it is, to be handled as any (a redrive).
    pub fn into_webhook(self) -> EnrichJob {
        EnrichJob::Webhook {
            key: self.key,
            received_at: self.received_at,
            body: self.body,
        }
    }
}

impl EnrichJob {
    /// The job's idempotency key: the webhook's, or the conversion's
    /// ([`ConversionJob::key`]).
    pub fn key(&self) -> &str {
        match self {
            EnrichJob::Webhook { key, .. } | EnrichJob::Stale(StaleWebhook { key, .. }) => key,
            EnrichJob::Conversion(job) => &job.key,
            EnrichJob::Workflow(job) => &job.key,
            EnrichJob::Listed(job) => &job.key,
            EnrichJob::Opportunity(job) => &job.key,
        }
    }

    /// The job as a message: in its contact's FIFO group, deduplicated by its key.
    pub fn outgoing(&self) -> Result<Outgoing, serde_json::Error> {
        Ok(Outgoing {
            body: serde_json::to_string(self)?,
            group_id: Some(self.group_id()),
            dedup_id: Some(self.key().to_owned()),
            delay: None,
        })
    }

    /// The FIFO group it belongs to: its location and contact.
    pub fn group_id(&self) -> String {
        match self {
            EnrichJob::Conversion(job) => {
                group_id(&job.conversion.location_id, Some(&job.contact_id))
            }
            EnrichJob::Workflow(job) => group_id(&job.location_id, Some(&job.contact_id)),
            EnrichJob::Listed(job) => group_id(&job.location_id, Some(&job.contact_id)),
            EnrichJob::Opportunity(job) => {
                group_id(&job.location_id, job.opportunity.contact_id.as_deref())
            }
            EnrichJob::Webhook { body, .. } | EnrichJob::Stale(StaleWebhook { body, .. }) => {
                let webhook = Webhook::parse(body.as_bytes()).ok();
                let webhook = webhook.as_ref();
                group_id(
                    webhook.and_then(Webhook::location_id).unwrap_or("-"),
                    webhook.and_then(Webhook::contact_id),
                )
            }
        }
    }
}

/// A posted conversion as queued: the body, and the event id Meta will receive
/// (the caller's own, or one derived from the conversion). The id is required, so
/// no job can share an empty idempotency key with another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ConversionJobWire")]
pub struct ConversionJob {
    pub contact_id: String,
    pub received_at: DateTime<Utc>,
    pub event_id: String,
    /// Its idempotency key: `{location}:{contact}:{event type}:{event id}`, so one
    /// id used for two contacts or two event types is two jobs.
    pub key: String,
    pub conversion: PostedConversion,
}

impl ConversionJob {
    pub fn new(
        contact_id: &str,
        received_at: DateTime<Utc>,
        event_id: &str,
        conversion: PostedConversion,
    ) -> Self {
        ConversionJob {
            key: conversion_key(&conversion, contact_id, event_id),
            contact_id: contact_id.to_owned(),
            received_at,
            event_id: event_id.to_owned(),
            conversion,
        }
    }
}

fn conversion_key(conversion: &PostedConversion, contact_id: &str, event_id: &str) -> String {
    format!(
        "{}:{contact_id}:{}:{event_id}",
        conversion.location_id, conversion.event_type
    )
}

/// A conversion job as read: jobs queued before the id had a field of its own
/// carry it only inside the conversion.
#[derive(Deserialize)]
struct ConversionJobWire {
    contact_id: String,
    received_at: DateTime<Utc>,
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default)]
    key: Option<String>,
    conversion: PostedConversion,
}

impl TryFrom<ConversionJobWire> for ConversionJob {
    type Error = &'static str;

    fn try_from(wire: ConversionJobWire) -> Result<Self, Self::Error> {
        let event_id = wire
            .event_id
            .or_else(|| wire.conversion.event_id.clone())
            .filter(|id| !id.is_empty())
            .ok_or("a conversion job must carry its event id")?;
        // A job queued before keys were scoped was marked done under its id.
        let key = wire.key.unwrap_or_else(|| event_id.clone());
        Ok(ConversionJob {
            contact_id: wire.contact_id,
            received_at: wire.received_at,
            event_id,
            key,
            conversion: wire.conversion,
        })
    }
}

/// A workflow call as queued: the body as received (read again by enrichment, so
/// a later build reads what this one did not), with what intake read of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowJob {
    /// Its idempotency key: `{location}:{contact}:workflow:{workflow}:{event id}`.
    pub key: String,
    pub received_at: DateTime<Utc>,
    /// The event id Meta will receive: the caller's, or one derived from the call.
    pub event_id: String,
    pub location_id: String,
    pub contact_id: String,
    pub body: String,
}

impl WorkflowJob {
    pub fn new(
        call: &crate::ghl::workflow::WorkflowCall,
        event_id: &str,
        received_at: DateTime<Utc>,
        body: &str,
    ) -> Self {
        WorkflowJob {
            key: format!(
                "{}:{}:workflow:{}:{event_id}",
                call.location_id,
                call.contact_id,
                call.workflow.key()
            ),
            received_at,
            event_id: event_id.to_owned(),
            location_id: call.location_id.clone(),
            contact_id: call.contact_id.clone(),
            body: body.to_owned(),
        }
    }
}

/// The body of a posted conversion. The contact comes from the path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostedConversion {
    pub location_id: String,
    /// The user's name for what happened (`purchase`, `qualified`, …); rules match on it.
    pub event_type: String,
    /// When it happened, ISO-8601.
    pub timestamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The caller's own id for this conversion; it makes retries idempotent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub custom_data: Map<String, Value>,
}

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
    /// What it has been through while Meta could not take it (queued with it).
    #[serde(default, skip_serializing_if = "History::is_empty")]
    pub history: History,
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

impl Held for DispatchJob {
    fn history(&self) -> &History {
        &self.history
    }
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
    fn a_conversion_job_carries_its_event_id_and_reads_the_older_shape() {
        let conversion = json!({"locationId": "loc", "eventType": "Lead",
            "timestamp": "2026-11-20T09:00:00Z", "eventId": "order-1"});
        let older = json!({"kind": "conversion", "contact_id": "c1",
            "received_at": "2026-11-20T09:00:01Z", "conversion": conversion});
        let job: EnrichJob = serde_json::from_value(older).expect("older job");
        assert_eq!(
            job.key(),
            "order-1",
            "as it was marked done before keys were scoped"
        );
        assert_eq!(job.group_id(), "loc:c1");
        let EnrichJob::Conversion(older) = &job else {
            panic!("a conversion")
        };
        let new = ConversionJob::new("c1", older.received_at, "order-1", older.conversion.clone());
        assert_eq!(new.key, "loc:c1:Lead:order-1");
        let again: EnrichJob =
            serde_json::from_str(&serde_json::to_string(&job).expect("ser")).expect("de");
        assert_eq!(again, job);

        let without = json!({"kind": "conversion", "contact_id": "c1",
            "received_at": "2026-11-20T09:00:01Z",
            "conversion": {"locationId": "loc", "eventType": "Lead", "timestamp": "2026-11-20T09:00:00Z"}});
        let refused = serde_json::from_value::<EnrichJob>(without).unwrap_err();
        assert!(refused.to_string().contains("event id"), "{refused}");
    }

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
