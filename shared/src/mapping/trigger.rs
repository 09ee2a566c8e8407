//! The kinds of change a rule can fire on, by the names mapping files use.

use std::fmt;
use std::str::FromStr;

/// A kind of change a rule can fire on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    ContactCreated,
    ContactUpdated,
    TagAdded,
    TagRemoved,
    OpportunityCreated,
    OpportunityStatusChanged,
    OpportunityStageChanged,
    OpportunityValueChanged,
    AppointmentBooked,
    AppointmentUpdated,
    NoteCreated,
    NoteUpdated,
    TaskCreated,
    TaskCompleted,
    ConversionPosted,
    WorkflowFired,
}

impl Trigger {
    /// Every trigger, with the name a mapping file uses for it.
    pub const ALL: [(Trigger, &'static str); 16] = [
        (Trigger::ContactCreated, "contact.created"),
        (Trigger::ContactUpdated, "contact.updated"),
        (Trigger::TagAdded, "contact.tag_added"),
        (Trigger::TagRemoved, "contact.tag_removed"),
        (Trigger::OpportunityCreated, "opportunity.created"),
        (
            Trigger::OpportunityStatusChanged,
            "opportunity.status_changed",
        ),
        (
            Trigger::OpportunityStageChanged,
            "opportunity.stage_changed",
        ),
        (
            Trigger::OpportunityValueChanged,
            "opportunity.value_changed",
        ),
        (Trigger::AppointmentBooked, "appointment.booked"),
        (Trigger::AppointmentUpdated, "appointment.updated"),
        (Trigger::NoteCreated, "note.created"),
        (Trigger::NoteUpdated, "note.updated"),
        (Trigger::TaskCreated, "task.created"),
        (Trigger::TaskCompleted, "task.completed"),
        (Trigger::ConversionPosted, "conversion.posted"),
        (Trigger::WorkflowFired, "workflow.fired"),
    ];

    /// The name used in mapping files (`contact.created`, …).
    pub fn name(self) -> &'static str {
        Trigger::ALL
            .iter()
            .find(|(t, _)| *t == self)
            .map_or("", |(_, n)| n)
    }

    /// The entity besides the contact that the trigger is about, by its path prefix.
    pub fn entity(self) -> Option<&'static str> {
        match self {
            Trigger::ContactCreated
            | Trigger::ContactUpdated
            | Trigger::TagAdded
            | Trigger::TagRemoved => None,
            Trigger::OpportunityCreated
            | Trigger::OpportunityStatusChanged
            | Trigger::OpportunityStageChanged
            | Trigger::OpportunityValueChanged => Some("opportunity"),
            Trigger::AppointmentBooked | Trigger::AppointmentUpdated => Some("appointment"),
            Trigger::NoteCreated | Trigger::NoteUpdated => Some("note"),
            Trigger::TaskCreated | Trigger::TaskCompleted => Some("task"),
            Trigger::ConversionPosted => Some("conversion"),
            Trigger::WorkflowFired => Some("workflow"),
        }
    }

    /// Whether reconciliation's polling can find this change when its webhook never
    /// came: contacts' creations and tags, opportunities' creations, statuses and
    /// stages. Other GHL changes come from webhooks only; posted conversions and
    /// workflow calls are pushed by callers that retry.
    pub fn recovered_by_polling(self) -> bool {
        matches!(
            self,
            Trigger::ContactCreated
                | Trigger::TagAdded
                | Trigger::TagRemoved
                | Trigger::OpportunityCreated
                | Trigger::OpportunityStatusChanged
                | Trigger::OpportunityStageChanged
        )
    }

    /// The webhook a workflow call that declares this trigger (its Custom Data
    /// `trigger`) is told as, so the trigger's rules fire from it as from GHL's
    /// webhook of the same change; `None`: no workflow call carries what it is
    /// about.
    pub fn told_by_workflow(self) -> Option<&'static str> {
        match self {
            Trigger::OpportunityCreated => Some("OpportunityCreate"),
            Trigger::OpportunityStatusChanged => Some("OpportunityStatusUpdate"),
            Trigger::OpportunityStageChanged => Some("OpportunityStageUpdate"),
            Trigger::OpportunityValueChanged => Some("OpportunityMonetaryValueUpdate"),
            Trigger::AppointmentBooked => Some("AppointmentCreate"),
            Trigger::AppointmentUpdated => Some("AppointmentUpdate"),
            _ => None,
        }
    }

    /// Whether its changes come from GHL's webhooks (else from a caller's push).
    pub fn from_webhooks(self) -> bool {
        !matches!(self, Trigger::ConversionPosted | Trigger::WorkflowFired)
    }

    /// Whether the caller may choose the event's id (a posted conversion's or a
    /// workflow call's `eventId`): then Meta receives it verbatim, so it can
    /// deduplicate against a browser pixel event that used the same id.
    pub fn takes_caller_event_id(self) -> bool {
        matches!(self, Trigger::ConversionPosted | Trigger::WorkflowFired)
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A trigger name no mapping knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown trigger `{0}`; expected one of: {list}", list = Trigger::ALL.map(|(_, n)| n).join(", "))]
pub struct UnknownTrigger(pub String);

impl FromStr for Trigger {
    type Err = UnknownTrigger;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Trigger::ALL
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(t, _)| *t)
            .ok_or_else(|| UnknownTrigger(s.to_owned()))
    }
}
