//! GHL's workflow builder as a caller: the **Webhook** action's standard payload
//! and the **Custom Webhook** action's body, read into one [`WorkflowCall`].
//!
//! What is known of them (sources in `tests/fixtures/workflows/README.md`):
//! - The Webhook action POSTs JSON with the contact's standard data (name, email,
//!   phone, address, tags, custom fields) and the key/value pairs the user adds
//!   under *Custom Data* [secondary]. Its field names are not documented by GHL;
//!   as reported they are snake_case at the top level (`contact_id`,
//!   `first_name`, `full_name`, `tags` as one comma-separated string), with nested
//!   `location`, `workflow {id, name}`, `triggerData`, `customData` and a `contact`
//!   object carrying `attributionSource` / `lastAttributionSource` [UNCONFIRMED].
//! - The Custom Webhook action sends the body, headers and auth header the user
//!   sets, with `{{contact.id}}`-style merge fields; a merge field with no value
//!   becomes empty text [secondary].
//! - Neither is signed by GHL [UNCONFIRMED]: the route takes an API key instead.
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

pub mod merge;

/// Names a field goes by, camelCase first.
type Names = &'static [&'static str];

/// The fields a call may carry the caller's API key in, at its top level or in its
/// Custom Data: all GHL's plain Webhook action can add when it offers no header.
/// [`take_key`] takes them out before anything keeps the body.
pub const KEY_FIELDS: Names = &["apiKey", "api_key"];

const LOCATION: Names = &["locationId", "location_id"];
const CONTACT: Names = &["contactId", "contact_id"];
const EVENT: Names = &["event", "eventName", "event_name"];
const VALUE: Names = &["value"];
const CURRENCY: Names = &["currency"];
const EVENT_ID: Names = &["eventId", "event_id"];
const OCCURRED_AT: Names = &["occurredAt", "occurred_at"];
const CUSTOM_DATA: Names = &["customData", "custom_data"];
const TRIGGER_DATA: Names = &["triggerData", "trigger_data"];

/// Contact fields: the record's (camelCase) name, then what else GHL calls it.
const CONTACT_FIELDS: [(&str, Names); 15] = [
    ("firstName", &["first_name"]),
    ("lastName", &["last_name"]),
    ("name", &["full_name", "fullName"]),
    ("email", &[]),
    ("phone", &[]),
    ("companyName", &["company_name"]),
    ("address1", &["address"]),
    ("city", &[]),
    ("state", &[]),
    ("postalCode", &["postal_code"]),
    ("country", &[]),
    ("timezone", &[]),
    ("dateOfBirth", &["date_of_birth"]),
    ("source", &["contact_source"]),
    ("dateAdded", &["date_created", "dateCreated"]),
];
const ATTRIBUTION: [(&str, Names); 2] = [
    ("attributionSource", &["attribution_source"]),
    ("lastAttributionSource", &["last_attribution_source"]),
];

/// `value` as non-empty text: text trimmed, numbers written out.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The first present, non-empty value under any of `names` in `object`.
fn find<'a>(object: &'a Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    names
        .iter()
        .filter_map(|n| object.get(*n))
        .find(|v| !is_empty(v))
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Object(o) => o.values().all(is_empty),
        _ => false,
    }
}

fn object<'a>(object: &'a Map<String, Value>, names: &[&str]) -> Option<&'a Map<String, Value>> {
    find(object, names).and_then(Value::as_object)
}

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

/// The contact as the body carries it, in the record's own shape: fields from the
/// top level or the nested `contact` object under any of their names, tags as a
/// list or comma-separated text, attribution when it is an object GHL filled in.
fn carried_contact(
    body: &Map<String, Value>,
    nested: &Map<String, Value>,
    contact_id: &str,
    location_id: &str,
) -> Contact {
    let mut record = Map::new();
    record.insert("id".into(), contact_id.into());
    record.insert("locationId".into(), location_id.into());
    let both = |names: &[&str]| find(nested, names).or_else(|| find(body, names));
    for (field, others) in CONTACT_FIELDS {
        let names: Vec<&str> = std::iter::once(field)
            .chain(others.iter().copied())
            .collect();
        if let Some(value) = both(&names).and_then(text) {
            record.insert(field.into(), value.into());
        }
    }
    let tags: Vec<String> = match both(&["tags"]) {
        Some(Value::Array(list)) => list.iter().filter_map(text).collect(),
        Some(Value::String(joined)) => joined
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    record.insert("tags".into(), tags.into());
    let mut with_attribution = record.clone();
    for (field, others) in ATTRIBUTION {
        let names: Vec<&str> = std::iter::once(field)
            .chain(others.iter().copied())
            .collect();
        if let Some(Value::Object(touch)) = both(&names) {
            with_attribution.insert(field.into(), Value::Object(touch.clone()));
        }
    }
    // An attribution of a shape the record does not read is left out, not the
    // contact (a rule that needs it then reads it from GHL).
    as_contact(with_attribution)
        .or_else(|| {
            tracing::info!(
                location_id,
                contact_id,
                "a call's attribution is unreadable: left out"
            );
            as_contact(record)
        })
        .unwrap_or_else(|| Contact {
            id: contact_id.to_owned(),
            location_id: Some(location_id.to_owned()),
            ..Contact::default()
        })
}

fn as_contact(record: Map<String, Value>) -> Option<Contact> {
    serde_json::from_value(Value::Object(record)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(body: Value) -> Result<WorkflowCall, WorkflowError> {
        WorkflowCall::parse(body.to_string().as_bytes())
    }

    #[test]
    fn the_standard_payload_is_read_with_its_contact_and_attribution() {
        let standard = json!({
            "contact_id": "c1", "first_name": "Ana", "last_name": "Lima", "full_name": "Ana Lima",
            "email": "ana@example.com", "phone": "+15551230000", "tags": "vip, lead",
            "postal_code": "94025", "contact_source": "form", "date_created": "2026-11-20T09:00:00.000Z",
            "location": {"id": "loc", "name": "Shop"},
            "workflow": {"id": "wf-1", "name": "Booked call"},
            "triggerData": {}, "customData": {"value": "49.90", "currency": "EUR"},
            "contact": {"attributionSource": {"fbclid": "abc", "url": "https://shop.example/"},
                        "lastAttributionSource": {}},
            "Favourite colour": "green",
        });
        let c = call(standard).expect("a call");
        assert_eq!(
            (c.location_id.as_str(), c.contact_id.as_str()),
            ("loc", "c1")
        );
        assert_eq!(c.workflow.refs(), ["wf-1", "Booked call"]);
        assert_eq!(c.workflow.key(), "wf-1");
        assert_eq!(c.value, Some(json!("49.90")));
        assert_eq!(c.currency.as_deref(), Some("EUR"));
        assert_eq!(c.contact.first_name.as_deref(), Some("Ana"));
        assert_eq!(c.contact.name.as_deref(), Some("Ana Lima"));
        assert_eq!(c.contact.postal_code.as_deref(), Some("94025"));
        assert_eq!(c.contact.tags, ["vip", "lead"]);
        assert_eq!(
            c.contact.date_added.as_deref(),
            Some("2026-11-20T09:00:00.000Z")
        );
        assert!(c.carries_attribution());
        assert_eq!(
            c.contact
                .attribution_source
                .as_ref()
                .and_then(|a| a.fbclid.as_deref()),
            Some("abc")
        );
        assert!(
            c.contact.last_attribution_source.is_none(),
            "an empty touch is none"
        );
        let entity = c.entity("ev-1");
        assert_eq!(
            entity["body"]["Favourite colour"], "green",
            "unknown fields are kept"
        );
    }

    #[test]
    fn a_custom_body_and_its_name_variants_are_read_alike() {
        let camel = json!({"locationId": "loc", "contactId": "c1", "workflow": "Booked call",
            "event": "Schedule", "value": 10, "currency": "USD", "eventId": "e-1",
            "occurredAt": "2026-11-20T09:00:00Z", "customData": {"plan": "gold"}, "extra": [1]});
        let snake = json!({"location_id": "loc", "contact_id": "c1", "workflow_name": "Booked call",
            "event_name": "Schedule", "value": 10, "currency": "USD", "event_id": "e-1",
            "occurred_at": "2026-11-20T09:00:00Z", "custom_data": {"plan": "gold"}});
        let (a, b) = (call(camel).expect("camel"), call(snake).expect("snake"));
        for c in [&a, &b] {
            assert_eq!(c.workflow.refs(), ["Booked call"]);
            assert_eq!(c.event.as_deref(), Some("Schedule"));
            assert_eq!(c.event_id.as_deref(), Some("e-1"));
            assert_eq!(c.occurred_at.as_deref(), Some("2026-11-20T09:00:00Z"));
            assert_eq!(c.custom_data["plan"], "gold");
            assert!(!c.carries_attribution());
            assert_eq!(c.contact.id, "c1");
        }
    }

    #[test]
    fn empty_merge_fields_count_as_absent_and_what_is_missing_is_named() {
        let empty_contact = json!({"locationId": "loc", "contactId": " ", "workflow": "w"});
        assert_eq!(
            call(empty_contact),
            Err(WorkflowError::Missing("contactId"))
        );
        let no_workflow = json!({"locationId": "loc", "contactId": "c1", "workflow": {"id": ""}});
        assert_eq!(call(no_workflow), Err(WorkflowError::Missing("workflow")));
        assert_eq!(
            call(json!({"contactId": "c1", "workflow": "w"})),
            Err(WorkflowError::Missing("locationId"))
        );
        assert_eq!(call(json!([1])), Err(WorkflowError::NotObject));
        assert!(matches!(
            WorkflowCall::parse(b"contact_id=c1"),
            Err(WorkflowError::NotJson(_))
        ));
        let blank = json!({"locationId": "loc", "contactId": "c1", "workflow": "w",
            "email": "", "eventId": "", "event": ""});
        let c = call(blank).expect("a call");
        assert_eq!((c.contact.email, c.event_id, c.event), (None, None, None));
        let odd = json!({"locationId": "loc", "contactId": "c1", "workflow": "w",
            "email": "a@b.example", "attributionSource": {"fbclid": {"nested": 1}}});
        let c = call(odd).expect("a call");
        assert!(
            !c.carries_attribution(),
            "an unreadable attribution is left out"
        );
        assert_eq!(
            c.contact.email.as_deref(),
            Some("a@b.example"),
            "the contact is not"
        );
    }
}
