//! Where a workflow call's fields are: the names each goes by (camelCase first,
//! then snake_case and GHL's other spellings), read tolerantly (empty text counts
//! as absent), and the contact the body carries, custom fields included.

use serde_json::{Map, Value};

use crate::ghl::record::Contact;

/// Names a field goes by, camelCase first.
pub(super) type Names = &'static [&'static str];

/// The fields a call may carry the caller's API key in, at its top level or in its
/// Custom Data: all GHL's plain Webhook action can add when it offers no header.
/// [`super::take_key`] takes them out before anything keeps the body.
pub const KEY_FIELDS: Names = &["apiKey", "api_key"];

pub(super) const LOCATION: Names = &["locationId", "location_id"];
pub(super) const CONTACT: Names = &["contactId", "contact_id"];
pub(super) const EVENT: Names = &["event", "eventName", "event_name"];
pub(super) const VALUE: Names = &["value"];
pub(super) const CURRENCY: Names = &["currency"];
pub(super) const EVENT_ID: Names = &["eventId", "event_id"];
pub(super) const OCCURRED_AT: Names = &["occurredAt", "occurred_at"];
pub(super) const CUSTOM_DATA: Names = &["customData", "custom_data"];
pub(super) const TRIGGER_DATA: Names = &["triggerData", "trigger_data"];

/// Contact fields: the record's (camelCase) name, then what else GHL calls it.
pub(super) const CONTACT_FIELDS: [(&str, Names); 15] = [
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
pub(super) const ATTRIBUTION: [(&str, Names); 2] = [
    ("attributionSource", &["attribution_source"]),
    ("lastAttributionSource", &["last_attribution_source"]),
];

/// `value` as non-empty text: text trimmed, numbers written out.
pub(super) fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A field's names: its own, then what else it goes by.
pub(super) fn with_names(field: &'static str, others: Names) -> Vec<&'static str> {
    std::iter::once(field)
        .chain(others.iter().copied())
        .collect()
}

/// The first present, non-empty value under any of `names` in `object`.
pub(super) fn find<'a>(object: &'a Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    names
        .iter()
        .filter_map(|n| object.get(*n))
        .find(|v| !is_empty(v))
}

pub(super) fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Object(o) => o.values().all(is_empty),
        _ => false,
    }
}

pub(super) fn object<'a>(
    object: &'a Map<String, Value>,
    names: &[&str],
) -> Option<&'a Map<String, Value>> {
    find(object, names).and_then(Value::as_object)
}

/// Top-level names the plain action's standard payload (and the calls this
/// route reads) use for something other than a custom field.
const STANDARD: Names = &[
    "id",
    "contact_id",
    "contactId",
    "location_id",
    "locationId",
    "tags",
    "full_address",
    "contact_type",
    "timezone",
    "website",
    "gclid",
    "location",
    "workflow",
    "workflowId",
    "workflow_id",
    "workflowName",
    "workflow_name",
    "triggerData",
    "trigger_data",
    "contact",
    "attributionSource",
    "attribution_source",
    "lastAttributionSource",
    "last_attribution_source",
    "customData",
    "custom_data",
    "calendar",
    "appointment",
    "opportunity",
    "opportunity_id",
    "opportunityId",
    "opportunity_name",
    "status",
    "lead_value",
    "opportunity_source",
    "source",
    "pipeline_id",
    "pipeline_name",
    "pipleline_stage",
    "pippleine_stage",
    "pipeline_stage",
    "pipeline_stage_id",
    "pipelineStageId",
    "user",
    "owner",
    "event",
    "eventName",
    "event_name",
    "value",
    "currency",
    "eventId",
    "event_id",
    "occurredAt",
    "occurred_at",
    "trigger",
];

/// The contact's custom fields as the plain action sends them: at the top level,
/// keyed by their display name (`"How can we help?"`), each a custom field whose
/// id and key are that name, so `custom.<display name>` reads it. Every top-level
/// field that is neither standard nor a contact field counts; objects do not.
fn custom_fields(body: &Map<String, Value>) -> Vec<Value> {
    let contact_names = CONTACT_FIELDS
        .iter()
        .flat_map(|(field, others)| std::iter::once(*field).chain(others.iter().copied()));
    let known: std::collections::HashSet<&str> = STANDARD
        .iter()
        .copied()
        .chain(contact_names)
        .chain(
            ATTRIBUTION
                .iter()
                .flat_map(|(f, o)| std::iter::once(*f).chain(o.iter().copied())),
        )
        .collect();
    body.iter()
        .filter(|(name, value)| {
            !known.contains(name.as_str()) && !value.is_object() && !is_empty(value)
        })
        .map(|(name, value)| serde_json::json!({"id": name, "key": name, "value": value}))
        .collect()
}

/// The contact as the body carries it, in the record's own shape: fields from the
/// top level or the nested `contact` object under any of their names, tags as a
/// list or comma-separated text, custom fields by their display name
/// ([`custom_fields`]), attribution when it is an object GHL filled in.
pub(super) fn carried_contact(
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
        if let Some(value) = both(&with_names(field, others)).and_then(text) {
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
    record.insert("customFields".into(), custom_fields(body).into());
    let mut with_attribution = record.clone();
    for (field, others) in ATTRIBUTION {
        if let Some(Value::Object(touch)) = both(&with_names(field, others)) {
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
