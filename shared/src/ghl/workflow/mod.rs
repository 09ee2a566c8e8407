//! GHL's workflow builder as a caller: the **Webhook** action's standard payload
//! and the **Custom Webhook** action's body, read into one [`WorkflowCall`].
//!
//! What is known of them (sources in `tests/fixtures/workflows/README.md`):
//! - The Webhook action POSTs JSON with the contact's standard data (name, email,
//!   phone, address, tags, custom fields) and the key/value pairs the user adds
//!   under *Custom Data* \[secondary\]. Its field names are not documented by GHL;
//!   as reported they are snake_case at the top level (`contact_id`,
//!   `first_name`, `full_name`, `tags` as one comma-separated string), with nested
//!   `location`, `workflow {id, name}`, `triggerData`, `customData` and a `contact`
//!   object carrying `attributionSource` / `lastAttributionSource` \[UNCONFIRMED\].
//! - The Custom Webhook action sends the body, headers and auth header the user
//!   sets, with `{{contact.id}}`-style merge fields; a merge field with no value
//!   becomes empty text \[secondary\].
//! - Neither is signed by GHL \[UNCONFIRMED\]: the route takes an API key instead.
//!
//! So the reading is tolerant: each field is looked for under its camelCase and
//! snake_case names, at the top level, in `customData` (all the plain action can
//! add) and in the nested objects; empty text counts as absent; nothing unknown is
//! refused, and the whole body is kept for the mapping (`workflow.body.<field>`).

use serde_json::{Map, Value, json};

use super::record::Contact;

/// A workflow, as the call names it: its id and name (the standard payload), or
/// one text that may be either (a custom body's `"workflow": "Booked call"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowRef {
    pub id: Option<String>,
    pub name: Option<String>,
}

impl WorkflowRef {
    /// What names it, for matching: a rule's `workflow = "…"` may give either.
    pub fn refs(&self) -> Vec<&str> {
        self.id
            .iter()
            .chain(&self.name)
            .map(String::as_str)
            .collect()
    }

    /// What identifies it in keys: the id when the call gives one.
    pub fn key(&self) -> &str {
        self.id
            .as_deref()
            .or(self.name.as_deref())
            .unwrap_or_default()
    }
}

/// One call of a workflow action.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowCall {
    pub location_id: String,
    pub contact_id: String,
    pub workflow: WorkflowRef,
    /// What happened, in the user's words (`"Schedule"`, `"booked"`): rules may
    /// send it as the event name.
    pub event: Option<String>,
    /// A number, or numeric text (merge fields are text).
    pub value: Option<Value>,
    pub currency: Option<String>,
    /// The caller's own id for this event; it makes retries idempotent.
    pub event_id: Option<String>,
    /// When the trigger happened (ISO-8601), if the call says.
    pub occurred_at: Option<String>,
    pub custom_data: Map<String, Value>,
    pub trigger_data: Map<String, Value>,
    /// The trigger the call says it tells of (its Custom Data `trigger`, such as
    /// `opportunity.stage_changed`): then it is also told as that trigger's
    /// webhook ([`WorkflowCall::webhook`]).
    pub trigger: Option<String>,
    /// The opportunity an opportunity trigger's call carries, in the webhook's
    /// field names.
    pub opportunity: Option<Map<String, Value>>,
    /// The appointment an appointment trigger's call carries, in the webhook's
    /// field names, its times with their offset.
    pub appointment: Option<Map<String, Value>>,
    /// The contact as far as the body carries it (at least its id).
    pub contact: Contact,
    /// The body as received.
    pub body: Map<String, Value>,
}

/// Why a body is not a workflow call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkflowError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body is not a JSON object")]
    NotObject,
    #[error("{0} is missing or empty")]
    Missing(&'static str),
}

/// The field of [`WorkflowCall::entity`] listing what names the workflow (its id
/// and name): a rule's `workflow = …` tests it.
pub const REFS: &str = "refs";

mod fields;
pub mod merge;
mod told;

pub use fields::KEY_FIELDS;
use fields::{
    CONTACT, CURRENCY, CUSTOM_DATA, EVENT, EVENT_ID, LOCATION, Names, OCCURRED_AT, TRIGGER_DATA,
    VALUE, carried_contact, find, object, text,
};

/// Takes the caller's API key out of a call's body (its top level, then its
/// Custom Data), so that no queue, letter, journal or log ever holds it: the key
/// the body carried, if any, as text.
pub fn take_key(body: &mut Map<String, Value>) -> Option<String> {
    let mut found = None;
    let mut take = |object: &mut Map<String, Value>| {
        for name in KEY_FIELDS {
            if let Some(value) = object.remove(*name)
                && found.is_none()
            {
                found = text(&value);
            }
        }
    };
    take(body);
    for name in CUSTOM_DATA {
        if let Some(Value::Object(custom)) = body.get_mut(*name) {
            take(custom);
        }
    }
    found
}

/// A call's body as a JSON object, or why it is not one.
pub fn object_of(body: &[u8]) -> Result<Map<String, Value>, WorkflowError> {
    match serde_json::from_slice(body).map_err(|e| WorkflowError::NotJson(e.to_string()))? {
        Value::Object(body) => Ok(body),
        _ => Err(WorkflowError::NotObject),
    }
}

impl WorkflowCall {
    /// Reads a call's body (without any key it carries: [`take_key`]). It must
    /// name its location, contact and workflow; everything else is optional.
    pub fn parse(body: &[u8]) -> Result<WorkflowCall, WorkflowError> {
        let mut body = object_of(body)?;
        take_key(&mut body);
        WorkflowCall::read(body)
    }

    /// Reads a call's body as a JSON object: see [`WorkflowCall::parse`].
    pub fn read(body: Map<String, Value>) -> Result<WorkflowCall, WorkflowError> {
        let empty = Map::new();
        let custom = object(&body, CUSTOM_DATA).unwrap_or(&empty);
        let trigger = object(&body, TRIGGER_DATA).unwrap_or(&empty);
        let nested = |key: &str| body.get(key).and_then(Value::as_object).unwrap_or(&empty);
        let (location, contact) = (nested("location"), nested("contact"));
        // The top level first, then what the plain action can add (custom data).
        let own = |names: Names| find(&body, names).or_else(|| find(custom, names));

        let location_id = own(LOCATION)
            .or_else(|| find(location, &["id"]))
            .and_then(text)
            .ok_or(WorkflowError::Missing("locationId"))?;
        let contact_id = own(CONTACT)
            .or_else(|| find(contact, &["id"]))
            .and_then(text)
            .ok_or(WorkflowError::Missing("contactId"))?;
        let workflow = workflow(&body, custom).ok_or(WorkflowError::Missing("workflow"))?;
        let occurred_at = own(OCCURRED_AT)
            .or_else(|| find(trigger, OCCURRED_AT))
            .and_then(text);
        Ok(WorkflowCall {
            contact: carried_contact(&body, contact, &contact_id, &location_id),
            trigger: own(&["trigger"]).and_then(text),
            opportunity: told::opportunity(&body, &contact_id),
            appointment: told::appointment(&body, &contact_id),
            location_id,
            contact_id,
            workflow,
            event: own(EVENT).and_then(text),
            value: own(VALUE).cloned(),
            currency: own(CURRENCY).and_then(text),
            event_id: own(EVENT_ID).and_then(text),
            occurred_at,
            custom_data: custom.clone(),
            trigger_data: trigger.clone(),
            body,
        })
    }

    /// Whether the body carries the contact's attribution (first or last touch):
    /// then it need not be read from GHL.
    pub fn carries_attribution(&self) -> bool {
        self.contact.attribution_source.is_some() || self.contact.last_attribution_source.is_some()
    }

    /// The call as the mapping's `workflow.` paths read it.
    pub fn entity(&self, event_id: &str) -> Value {
        let mut entity = json!({
            "id": self.workflow.id,
            "name": self.workflow.name,
            "event": self.event,
            "value": self.value,
            "currency": self.currency,
            "eventId": event_id,
            "occurredAt": self.occurred_at,
            "customData": self.custom_data,
            "triggerData": self.trigger_data,
            "body": self.body,
        });
        entity[REFS] = json!(self.workflow.refs());
        entity
    }
}

/// `workflow` as an object `{id, name}` or one text, else `workflowId` /
/// `workflowName` beside it.
fn workflow(body: &Map<String, Value>, custom: &Map<String, Value>) -> Option<WorkflowRef> {
    let named = |names: Names| {
        find(body, names)
            .or_else(|| find(custom, names))
            .and_then(text)
    };
    let found = match find(body, &["workflow"]).or_else(|| find(custom, &["workflow"])) {
        Some(Value::Object(w)) => WorkflowRef {
            id: find(w, &["id"]).and_then(text),
            name: find(w, &["name"]).and_then(text),
        },
        Some(other) => WorkflowRef {
            id: None,
            name: text(other),
        },
        None => WorkflowRef {
            id: named(&["workflowId", "workflow_id"]),
            name: named(&["workflowName", "workflow_name"]),
        },
    };
    (found.id.is_some() || found.name.is_some()).then_some(found)
}

#[cfg(test)]
mod tests;
