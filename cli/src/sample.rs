//! What a mapping would have met: a location's most recent contacts, each with
//! the changes GHL holds of it (its creation, its opportunities as they stand, its
//! appointments when a rule reads them), told as the webhooks of those changes and
//! named with the location's names; or the webhooks and workflow calls `serve`
//! kept ([`kept`]). `mapping init` previews a new mapping on it; `mapping diff`
//! compares two.

use chrono::Utc;
use futures_util::StreamExt;
use ghl_capi::ghl::budget::Use;
use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::names::LocationNames;
use ghl_capi::ghl::tokens::FixedTokens;
use ghl_capi::ghl::webhook::Webhook;
use ghl_capi::ghl::workflow::WorkflowCall;
use ghl_capi::ghl::{Contact, GhlReader, Related};
use ghl_capi::jobs::{EnrichJob, OpportunityJob};
use ghl_capi::mapping::{Mapping, Occurrence, Trigger};
use serde_json::{Map, json};

/// One contact and what happened to it.
pub(crate) struct Changed {
    pub(crate) contact: Contact,
    occurrences: Vec<Occurrence>,
}

impl Changed {
    pub(crate) fn added(&self) -> &str {
        self.contact.date_added.as_deref().unwrap_or("?")
    }

    /// What `mapping` would have sent for it, each change judged as of its own
    /// time: `Event (rule)`, or why a rule's event would not be sent; each once.
    pub(crate) fn sent(&self, mapping: &Mapping) -> Vec<String> {
        let mut sent = Vec::new();
        for occ in &self.occurrences {
            for event in mapping.map(occ, &self.contact, &Map::new(), occ.at) {
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
        .search_opportunities((location, Use::Command), None)
        .await?
        .opportunities;
    let appointments = mapping
        .rules
        .iter()
        .any(|r| r.trigger.entity() == Some("appointment"));
    let now = Utc::now();
    let mut sample = Vec::new();
    for contact in contacts {
        let created = Trigger::ContactCreated;
        let mut occurrences = vec![Occurrence::for_contact(created, location, &contact, now)];
        let theirs = opportunities
            .iter()
            .filter(|o| o.contact_id.as_deref() == Some(&contact.id));
        for o in theirs {
            // Told as reconciliation tells a listed opportunity.
            let job = OpportunityJob::new(location, o.clone(), now, now);
            for kind in [
                "OpportunityCreate",
                "OpportunityStageUpdate",
                "OpportunityStatusUpdate",
            ] {
                occurrences.extend(Occurrence::of_listed_opportunity(&job, kind, now));
            }
        }
        if appointments {
            match ghl
                .related(location, &contact.id, Related::Appointments)
                .await
            {
                Ok(listed) => {
                    for a in listed.as_array().into_iter().flatten() {
                        let body = json!({"type": "AppointmentCreate", "locationId": location,
                            "appointment": a, "timestamp": now.to_rfc3339()});
                        if let Ok(webhook) = Webhook::parse(body.to_string().as_bytes()) {
                            occurrences.extend(Occurrence::from_webhook(&webhook, None, now).0);
                        }
                    }
                }
                Err(e) => eprintln!(
                    "ghl-capi: contact {}'s appointments cannot be read ({e}): shown without them",
                    contact.id
                ),
            }
        }
        for occ in &mut occurrences {
            occ.name_with(names);
        }
        sample.push(Changed {
            contact,
            occurrences,
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

/// The webhooks and workflow calls `serve` kept (records under `replay#`),
/// each with the contact it carries; and how many no longer read as one (a body
/// kept by another build).
pub(crate) fn kept(records: &[(String, String)]) -> (Vec<Changed>, usize) {
    let sample: Vec<Changed> = records
        .iter()
        .filter_map(|(_, body)| replayed(body))
        .collect();
    let unreadable = records.len() - sample.len();
    (sample, unreadable)
}

/// One kept job, told as its occurrences are.
fn replayed(body: &str) -> Option<Changed> {
    let (contact, occurrences) = match serde_json::from_str::<EnrichJob>(body).ok()? {
        EnrichJob::Webhook {
            body, received_at, ..
        } => {
            let webhook = Webhook::parse(body.as_bytes()).ok()?;
            let (told, _) = Occurrence::from_webhook(&webhook, Some(&[]), received_at);
            (carried(&webhook), told)
        }
        EnrichJob::Workflow(job) => {
            let call = WorkflowCall::parse(job.body.as_bytes()).ok()?;
            let at = job.received_at;
            let (told, _) = Occurrence::of_workflow_call(&call, &job.event_id, at, at).ok()?;
            (call.contact.clone(), told)
        }
        _ => return None,
    };
    Some(Changed {
        contact,
        occurrences,
    })
}
