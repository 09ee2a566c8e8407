//! What happened: the occurrences webhooks (or posted conversions, or a backfill of
//! contacts) give rise to, ready to be matched against rules.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::Trigger;
use crate::ghl::parse_timestamp;
use crate::ghl::webhook::{Envelope, OpportunityEvent, Webhook};
use crate::ghl::workflow::WorkflowCall;
use crate::jobs::PostedConversion;

mod contact;
mod opportunity;
mod told;

pub use told::{TriggerError, declared, tellable};

use contact::tag_changes;

/// Whether a webhook's contact, never seen before, had its tags taken as the
/// baseline (so no tag trigger fired for them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    None,
    Taken,
}

/// One thing that happened to one contact, ready to be matched against rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Occurrence {
    pub trigger: Trigger,
    pub location_id: String,
    pub contact_id: String,
    /// The entity the trigger is about (opportunity, appointment, …) as GHL sent it.
    pub entity: Option<Value>,
    /// The tag added or removed, for tag triggers.
    pub tag: Option<String>,
    /// What identifies this change; with location, contact and rule it makes the
    /// event id, so the same change always yields the same id.
    pub change: String,
    /// When it happened (the event's `event_time`).
    pub at: DateTime<Utc>,
}

fn when(envelope: &Envelope, fallback: Option<&str>, now: DateTime<Utc>) -> DateTime<Utc> {
    envelope
        .sent_at()
        .or_else(|| fallback.and_then(parse_timestamp))
        .unwrap_or(now)
}

/// What a delivery is identified by, for change keys of repeatable changes.
fn delivery(envelope: &Envelope) -> &str {
    envelope
        .webhook_id
        .as_deref()
        .or(envelope.timestamp.as_deref())
        .unwrap_or_default()
}

impl Occurrence {
    /// The occurrences a webhook gives rise to, and whether the contact's tags
    /// were taken as a baseline. `previous_tags` are the contact's tags as last seen,
    /// `None` when it was never seen. Tag triggers fire on the difference, so "tag
    /// added" fires once, on the transition. A new contact (`ContactCreate`) has no
    /// earlier tags: each of its tags counts as added. Any other contact webhook
    /// for a contact never seen cannot tell which tag changed (counting every
    /// present tag as added would report tags added long ago), so its tags become
    /// the baseline and no tag trigger fires. Events that only repeat a specific
    /// one (`OpportunityUpdate` accompanies every status, stage and value change)
    /// give none, so one change is one event.
    pub fn from_webhook(
        webhook: &Webhook,
        previous_tags: Option<&[String]>,
        now: DateTime<Utc>,
    ) -> (Vec<Occurrence>, Baseline) {
        let mut baseline = Baseline::None;
        let occurrences = Occurrence::of_webhook(webhook, previous_tags, &mut baseline, now);
        (occurrences, baseline)
    }

    fn of_webhook(
        webhook: &Webhook,
        previous_tags: Option<&[String]>,
        baseline: &mut Baseline,
        now: DateTime<Utc>,
    ) -> Vec<Occurrence> {
        if written_back(webhook) {
            return Vec::new();
        }
        let env = webhook.envelope();
        let location = env.location_id.clone().unwrap_or_default();
        let one = |trigger, contact_id: Option<&str>, entity: Value, change: String, at| {
            contact_id
                .map(|c| Occurrence {
                    trigger,
                    location_id: location.clone(),
                    contact_id: c.to_owned(),
                    entity: Some(entity),
                    tag: None,
                    change,
                    at,
                })
                .into_iter()
                .collect()
        };
        match webhook {
            Webhook::ContactCreate(e)
            | Webhook::ContactUpdate(e)
            | Webhook::ContactTagUpdate(e) => {
                let c = &e.contact;
                let mut out = Vec::new();
                if let Webhook::ContactCreate(_) = webhook {
                    out.push(Occurrence::for_contact(
                        Trigger::ContactCreated,
                        &location,
                        c,
                        now,
                    ));
                }
                if let Webhook::ContactUpdate(_) = webhook {
                    let at = when(env, c.date_updated.as_deref(), now);
                    out.push(Occurrence {
                        change: format!("updated@{}", delivery(env)),
                        at,
                        ..Occurrence::for_contact(Trigger::ContactUpdated, &location, c, now)
                    });
                }
                let previous = match (previous_tags, webhook) {
                    (Some(seen), _) => seen,
                    (None, Webhook::ContactCreate(_)) => &[],
                    (None, _) => {
                        if !c.tags.is_empty() {
                            *baseline = Baseline::Taken;
                        }
                        &c.tags
                    }
                };
                out.extend(tag_changes(
                    &location,
                    c,
                    previous,
                    delivery(env),
                    when(env, None, now),
                ));
                out
            }
            Webhook::OpportunityCreate(o) => one(
                Trigger::OpportunityCreated,
                o.contact_id.as_deref(),
                opportunity_entity(o),
                o.id.clone(),
                when(env, o.date_added.as_deref(), now),
            ),
            Webhook::OpportunityStatusUpdate(o) => one(
                Trigger::OpportunityStatusChanged,
                o.contact_id.as_deref(),
                opportunity_entity(o),
                format!(
                    "{}:status:{}",
                    o.id,
                    o.status.as_deref().unwrap_or_default()
                ),
                when(env, None, now),
            ),
            Webhook::OpportunityStageUpdate(o) => one(
                Trigger::OpportunityStageChanged,
                o.contact_id.as_deref(),
                opportunity_entity(o),
                format!(
                    "{}:stage:{}",
                    o.id,
                    stage_refs(o).first().copied().unwrap_or_default()
                ),
                when(env, None, now),
            ),
            Webhook::OpportunityMonetaryValueUpdate(o) => one(
                Trigger::OpportunityValueChanged,
                o.contact_id.as_deref(),
                opportunity_entity(o),
                format!("{}:value:{}", o.id, o.monetary_value.unwrap_or_default()),
                when(env, None, now),
            ),
            Webhook::AppointmentCreate(a) => one(
                Trigger::AppointmentBooked,
                a.appointment.contact_id.as_deref(),
                appointment_entity(&a.appointment),
                a.appointment.id.clone(),
                when(env, a.appointment.date_added.as_deref(), now),
            ),
            Webhook::AppointmentUpdate(a) => one(
                Trigger::AppointmentUpdated,
                a.appointment.contact_id.as_deref(),
                appointment_entity(&a.appointment),
                format!("{}@{}", a.appointment.id, delivery(env)),
                when(env, a.appointment.date_updated.as_deref(), now),
            ),
            Webhook::NoteCreate(n) => one(
                Trigger::NoteCreated,
                n.contact_id.as_deref(),
                to_json(n),
                n.id.clone(),
                when(env, n.date_added.as_deref(), now),
            ),
            Webhook::NoteUpdate(n) => one(
                Trigger::NoteUpdated,
                n.contact_id.as_deref(),
                to_json(n),
                format!("{}@{}", n.id, delivery(env)),
                when(env, None, now),
            ),
            Webhook::TaskCreate(t) => one(
                Trigger::TaskCreated,
                t.contact_id.as_deref(),
                to_json(t),
                t.id.clone(),
                when(env, t.date_added.as_deref(), now),
            ),
            Webhook::TaskComplete(t) => one(
                Trigger::TaskCompleted,
                t.contact_id.as_deref(),
                to_json(t),
                t.id.clone(),
                when(env, None, now),
            ),
            _ => Vec::new(),
        }
    }

    /// The trigger `webhook` would have told of, were its contact named: GHL sends
    /// some webhooks without the contact's id (`TaskCreate`, its maintainers
    /// confirm: `reference/ghl-api.md` §8.3), and a change of nobody's can fire no
    /// rule. `None` for a webhook that names its contact, or tells of no trigger.
    pub fn without_contact(webhook: &Webhook) -> Option<Trigger> {
        let (trigger, contact) = match webhook {
            Webhook::TaskCreate(t) => (Trigger::TaskCreated, &t.contact_id),
            Webhook::TaskComplete(t) => (Trigger::TaskCompleted, &t.contact_id),
            Webhook::NoteCreate(n) => (Trigger::NoteCreated, &n.contact_id),
            Webhook::NoteUpdate(n) => (Trigger::NoteUpdated, &n.contact_id),
            Webhook::OpportunityCreate(o) => (Trigger::OpportunityCreated, &o.contact_id),
            Webhook::OpportunityStatusUpdate(o) => {
                (Trigger::OpportunityStatusChanged, &o.contact_id)
            }
            Webhook::OpportunityStageUpdate(o) => (Trigger::OpportunityStageChanged, &o.contact_id),
            Webhook::OpportunityMonetaryValueUpdate(o) => {
                (Trigger::OpportunityValueChanged, &o.contact_id)
            }
            Webhook::AppointmentCreate(a) => {
                (Trigger::AppointmentBooked, &a.appointment.contact_id)
            }
            Webhook::AppointmentUpdate(a) => {
                (Trigger::AppointmentUpdated, &a.appointment.contact_id)
            }
            _ => return None,
        };
        contact
            .as_deref()
            .is_none_or(|c| c.trim().is_empty())
            .then_some(trigger)
    }

    /// The occurrence of a workflow call. Its change is the event id intake gave
    /// it (the caller's, or one derived from the call), its time the trigger's
    /// when the call says, else when the call first arrived (not when it is
    /// handled: a retry keeps the time).
    pub fn for_workflow(
        call: &WorkflowCall,
        event_id: &str,
        received_at: DateTime<Utc>,
    ) -> Occurrence {
        Occurrence {
            trigger: Trigger::WorkflowFired,
            location_id: call.location_id.clone(),
            contact_id: call.contact_id.clone(),
            entity: Some(call.entity(event_id)),
            tag: None,
            change: event_id.to_owned(),
            at: call
                .occurred_at
                .as_deref()
                .and_then(parse_timestamp)
                .unwrap_or(received_at),
        }
    }

    /// A contact as listed, outside any change (a full audience sync): what
    /// conditions on the contact alone are read against.
    pub fn listed(location_id: &str, contact_id: &str, now: DateTime<Utc>) -> Occurrence {
        Occurrence {
            trigger: Trigger::ContactUpdated,
            location_id: location_id.to_owned(),
            contact_id: contact_id.to_owned(),
            entity: None,
            tag: None,
            change: String::new(),
            at: now,
        }
    }

    /// The occurrence of a posted conversion.
    pub fn for_conversion(
        contact_id: &str,
        conversion: &PostedConversion,
        now: DateTime<Utc>,
    ) -> Occurrence {
        Occurrence {
            trigger: Trigger::ConversionPosted,
            location_id: conversion.location_id.clone(),
            contact_id: contact_id.to_owned(),
            entity: Some(to_json(conversion)),
            tag: None,
            change: conversion
                .event_id
                .clone()
                .unwrap_or_else(|| format!("{}@{}", conversion.event_type, conversion.timestamp)),
            at: parse_timestamp(&conversion.timestamp).unwrap_or(now),
        }
    }
}

/// Whether `webhook` tells of a note or task the write-back made
/// ([`crate::jobs::write_back::SIGNATURE`]): the pipeline's own, which fires no rule.
fn written_back(webhook: &Webhook) -> bool {
    let body = match webhook {
        Webhook::NoteCreate(n) | Webhook::NoteUpdate(n) => &n.body,
        Webhook::TaskCreate(t) | Webhook::TaskComplete(t) => &t.body,
        _ => return false,
    };
    let signed = |b: &String| b.trim_end().ends_with(crate::jobs::write_back::SIGNATURE);
    body.as_ref().is_some_and(signed)
}

/// The field of an opportunity's entity listing what names its stage: its id,
/// and its name when the webhook (or a workflow call) carries it. A rule's
/// `stage = …` tests it, so either works.
pub const STAGE_REFS: &str = "stageRefs";

/// What names `o`'s stage: its id, then its name (a workflow call may give only
/// the name).
fn stage_refs(o: &OpportunityEvent) -> Vec<&str> {
    let name = o.extra.get("pipelineStageName").and_then(Value::as_str);
    o.pipeline_stage_id
        .as_deref()
        .into_iter()
        .chain(name)
        .collect()
}

/// The field of an opportunity's entity naming its pipeline: its id, and its
/// name where the change carries it or the location's names say.
pub const PIPELINE_REFS: &str = "pipelineRefs";
/// The field of an appointment's entity naming its calendar, as [`PIPELINE_REFS`].
pub const CALENDAR_REFS: &str = "calendarRefs";

/// An opportunity webhook as its triggers' rules read it, with [`STAGE_REFS`] and
/// [`PIPELINE_REFS`].
fn opportunity_entity(o: &OpportunityEvent) -> Value {
    let mut entity = to_json(o);
    entity[STAGE_REFS] = serde_json::json!(stage_refs(o));
    let pipeline = o.pipeline_id.as_deref();
    let name = o.extra.get("pipelineName").and_then(Value::as_str);
    entity[PIPELINE_REFS] = serde_json::json!(pipeline.into_iter().chain(name).collect::<Vec<_>>());
    entity
}

/// An appointment as its triggers' rules read it, with [`CALENDAR_REFS`].
fn appointment_entity<T: serde::Serialize>(appointment: &T) -> Value {
    let mut entity = to_json(appointment);
    let refs: Vec<Value> = ["calendarId", "calendarName"]
        .iter()
        .filter_map(|k| entity.get(*k).filter(|v| v.is_string()).cloned())
        .collect();
    entity[CALENDAR_REFS] = Value::Array(refs);
    entity
}

impl Occurrence {
    /// Adds the names `names` gives its entity's stage, pipeline and calendar
    /// ids to what names them, so a rule written in names fires on a change
    /// that carries only ids.
    pub fn name_with(&mut self, names: &crate::ghl::names::LocationNames) {
        let Some(entity) = self.entity.as_mut() else {
            return;
        };
        let stage = entity.get("pipelineStageId").and_then(Value::as_str);
        let pipeline = entity.get("pipelineId").and_then(Value::as_str);
        let calendar = entity.get("calendarId").and_then(Value::as_str);
        let found = [
            (STAGE_REFS, stage.and_then(|id| names.stage(id))),
            (
                PIPELINE_REFS,
                pipeline
                    .and_then(|id| names.pipeline(id))
                    .map(|p| p.name.as_str()),
            ),
            (CALENDAR_REFS, calendar.and_then(|id| names.calendar(id))),
        ]
        .map(|(field, name)| (field, name.map(str::to_owned)));
        for (field, name) in found {
            let (Some(name), Some(refs)) =
                (name, entity.get_mut(field).and_then(Value::as_array_mut))
            else {
                continue;
            };
            if !refs.iter().any(|r| r.as_str() == Some(&name)) {
                refs.push(Value::String(name));
            }
        }
    }

    /// Whether its entity gives what `refs` ([`STAGE_REFS`], [`PIPELINE_REFS`],
    /// [`CALENDAR_REFS`]) names by id alone, without the name (a webhook does; a
    /// workflow call gives names).
    pub fn unnamed(&self, refs: &str) -> bool {
        let (id, name) = match refs {
            STAGE_REFS => ("pipelineStageId", "pipelineStageName"),
            PIPELINE_REFS => ("pipelineId", "pipelineName"),
            CALENDAR_REFS => ("calendarId", "calendarName"),
            _ => return false,
        };
        self.entity
            .as_ref()
            .is_some_and(|e| e.get(id).is_some_and(Value::is_string) && e.get(name).is_none())
    }

    /// The stage, pipeline and calendar ids its entity names.
    pub fn named_ids(&self) -> Vec<&str> {
        let Some(entity) = &self.entity else {
            return Vec::new();
        };
        ["pipelineStageId", "pipelineId", "calendarId"]
            .iter()
            .filter_map(|k| entity.get(*k).and_then(Value::as_str))
            .collect()
    }
}

/// A payload struct as JSON, for field paths. They are plain data and serialise
/// infallibly; `Null` stands in should that ever change.
fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}
