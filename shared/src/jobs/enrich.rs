//! The enrichment queue's wire format: a webhook (or one delivered late), a posted
//! conversion, a workflow call, a contact a listing found, or an opportunity
//! ([`super::opportunity`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{OpportunityJob, WriteBackJob, among, group_id};
use crate::ghl::Contact;
use crate::ghl::webhook::Webhook;
use crate::ports::queue::Outgoing;

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
    /// What to write back into GHL about an event Meta took or a letter
    /// ([`super::write_back`]).
    WriteBack(WriteBackJob),
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
            EnrichJob::WriteBack(job) => &job.key,
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
            EnrichJob::WriteBack(job) => job.group_id(),
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
    /// membership is sent as it stands, even unchanged ([`AudienceJob::resync`](super::AudienceJob::resync)).
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
}
