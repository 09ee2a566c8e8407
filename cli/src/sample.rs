//! What a mapping would have met: a location's most recent contacts, each with
//! the changes GHL holds of it (its creation, its opportunities as they stand, its
//! appointments when a rule reads them), told as the webhooks of those changes and
//! named with the location's names; or the webhooks and workflow calls `serve`
//! kept ([`kept`]). `mapping init` previews a new mapping on it; `mapping diff`
//! compares two.

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::names::LocationNames;
use ghl_capi::ghl::tokens::FixedTokens;
use ghl_capi::ghl::webhook::Webhook;
use ghl_capi::ghl::workflow::WorkflowCall;
use ghl_capi::ghl::{Contact, GhlReader, Related};
use ghl_capi::jobs::EnrichJob;
use ghl_capi::mapping::{Mapping, Occurrence};
use serde_json::{Map, Value, json};

/// One contact and what happened to it.
pub(crate) struct Changed {
    pub(crate) contact: Contact,
    occurrences: Vec<Occurrence>,
    /// When its events are judged at (their age).
    at: DateTime<Utc>,
}

impl Changed {
    pub(crate) fn added(&self) -> &str {
        self.contact.date_added.as_deref().unwrap_or("?")
    }

    /// What `mapping` would have sent for it: `Event (rule)`, or why a rule's
    /// event would not be sent; each once.
    pub(crate) fn sent(&self, mapping: &Mapping) -> Vec<String> {
        let now = self.at;
        let mut sent = Vec::new();
        for occ in &self.occurrences {
            for event in mapping.map(occ, &self.contact, &Map::new(), now) {
                let line = match &event.outcome {
                    Ok(e) => format!("{} ({})", e.event_name, event.rule),
                    Err(why) => format!("not {} ({}: {why})", event.rule, why.code()),
                };
                if !sent.contains(&line) {
                    sent.push(line);
                }
            }
        }
        sent
    }
}

/// The `most` most recent contacts of `location`, newest first, with their
/// changes; appointments are read (one call a contact) only when a rule of
/// `mapping` fires on them.
pub(crate) async fn recent(
    ghl: &GhlClient<FixedTokens>,
    mapping: &Mapping,
    names: &LocationNames,
    location: &str,
    most: usize,
) -> anyhow::Result<Vec<Changed>> {
    let mut contacts: Vec<Contact> = Vec::new();
    let page = u32::try_from(most.min(100)).unwrap_or(100);
    let mut listed = std::pin::pin!(ghl.list_contacts(location, None, page));
    while contacts.len() < most {
        match listed.next().await {
            Some(contact) => contacts.push(contact?),
            None => break,
        }
    }
    contacts.sort_by(|a, b| b.date_added.cmp(&a.date_added));
    let opportunities = ghl
        .search_opportunities(location, None)
        .await?
        .opportunities;
    let appointments = mapping
        .rules
        .iter()
        .any(|r| r.trigger.entity() == Some("appointment"));
    let now = Utc::now();
    let mut sample = Vec::new();
    for contact in contacts {
        let mut created = serde_json::to_value(&contact)?;
        created["type"] = json!("ContactCreate");
        let mut bodies: Vec<Value> = vec![created];
        let theirs = opportunities
            .iter()
            .filter(|o| o.contact_id.as_deref() == Some(&contact.id));
        for o in theirs {
            let mut base = json!(o.extra);
            for (key, value) in [
                ("id", json!(o.id)),
                ("contactId", json!(contact.id)),
                ("locationId", json!(location)),
                ("pipelineStageId", json!(o.pipeline_stage_id)),
                ("status", json!(o.status)),
            ] {
                base[key] = value;
            }
            for kind in [
                "OpportunityCreate",
                "OpportunityStageUpdate",
                "OpportunityStatusUpdate",
            ] {
                let mut body = base.clone();
                body["type"] = json!(kind);
                bodies.push(body);
            }
        }
        if appointments {
            // A contact whose appointments cannot be read shows none.
            let listed = ghl
                .related(location, &contact.id, Related::Appointments)
                .await
                .unwrap_or_default();
            for a in listed.as_array().into_iter().flatten() {
                bodies.push(
                    json!({"type": "AppointmentCreate", "locationId": location, "appointment": a}),
                );
            }
        }
        let mut occurrences = Vec::new();
        for mut body in bodies {
            body["timestamp"] = json!(now.to_rfc3339());
            let Ok(webhook) = Webhook::parse(body.to_string().as_bytes()) else {
                continue;
            };
            let (told, _) = Occurrence::from_webhook(&webhook, Some(&[]), now);
            for mut occ in told {
                occ.name_with(names);
                occurrences.push(occ);
            }
        }
        sample.push(Changed {
            contact,
            occurrences,
            at: now,
        });
    }
    Ok(sample)
}

/// The contact a webhook carries: a contact webhook's whole, else its id alone.
pub(crate) fn carried(webhook: &Webhook) -> Contact {
    match webhook {
        Webhook::ContactCreate(e) | Webhook::ContactUpdate(e) | Webhook::ContactTagUpdate(e) => {
            let mut contact = e.contact.clone();
            contact.location_id = e.envelope.location_id.clone();
            contact
        }
        other => Contact {
            id: other.contact_id().unwrap_or_default().to_owned(),
            ..Contact::default()
        },
    }
}

/// The webhooks and workflow calls `serve` kept (records under
/// `replay#`), each with the contact it carries, judged as of its arrival.
pub(crate) fn kept(records: &[(String, String)]) -> Vec<Changed> {
    let mut sample = Vec::new();
    for (_, body) in records {
        let Ok(job) = serde_json::from_str::<EnrichJob>(body) else {
            continue;
        };
        let (contact, occurrences, at) = match job {
            EnrichJob::Webhook {
                body, received_at, ..
            } => {
                let Ok(webhook) = Webhook::parse(body.as_bytes()) else {
                    continue;
                };
                let (told, _) = Occurrence::from_webhook(&webhook, Some(&[]), received_at);
                (carried(&webhook), told, received_at)
            }
            EnrichJob::Workflow(job) => {
                let Ok(call) = WorkflowCall::parse(job.body.as_bytes()) else {
                    continue;
                };
                let at = job.received_at;
                let Ok((told, _)) = Occurrence::of_workflow_call(&call, &job.event_id, at, at)
                else {
                    continue;
                };
                (call.contact.clone(), told, at)
            }
            _ => continue,
        };
        sample.push(Changed {
            contact,
            occurrences,
            at,
        });
    }
    sample
}
