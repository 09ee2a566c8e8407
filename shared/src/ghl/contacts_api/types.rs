//! What the Contacts API takes and gives: inputs to create and update contacts,
//! tasks and notes, the records it lists, and the wrappers GHL puts around them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ghl::Contact;

/// A contact to create, update or upsert: the fields to set, others left alone.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactInput {
    /// Required to create or upsert; not sent on update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_of_birth: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dnd: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<Vec<CustomFieldInput>>,
    /// Any other field GHL accepts, sent as is.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A custom field's new value, by id or key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomFieldInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub field_value: Value,
}

impl CustomFieldInput {
    /// `field` set to `value`: by key when it names its object (`contact.…`), else
    /// by id.
    pub fn by(field: &str, value: Value) -> Self {
        let keyed = Self::is_key(field);
        CustomFieldInput {
            id: (!keyed).then(|| field.to_owned()),
            key: keyed.then(|| field.to_owned()),
            field_value: value,
        }
    }

    /// Whether `field` is a key (`contact.capi_score`), not an id (one word).
    pub fn is_key(field: &str) -> bool {
        field.contains('.')
    }
}

/// A task of a contact.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub id: String,
    pub title: Option<String>,
    pub body: Option<String>,
    pub assigned_to: Option<String>,
    pub due_date: Option<String>,
    pub completed: Option<bool>,
    pub contact_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A task to create or update.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskInput {
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// ISO-8601.
    pub due_date: String,
    pub completed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
}

/// A note on a contact.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Note {
    pub id: String,
    pub body: Option<String>,
    pub user_id: Option<String>,
    pub date_added: Option<String>,
    pub contact_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A note to create or update.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NoteInput {
    pub body: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// An appointment of a contact (GHL calls them events).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Appointment {
    pub id: String,
    pub calendar_id: Option<String>,
    pub status: Option<String>,
    pub title: Option<String>,
    pub appointment_status: Option<String>,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What an upsert did.
#[derive(Debug, Clone, PartialEq)]
pub struct Upserted {
    pub created: bool,
    pub contact: Contact,
}

/// One page of a search.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct SearchPage {
    #[serde(default)]
    pub contacts: Vec<Contact>,
    #[serde(default)]
    pub total: Option<u64>,
}

/// A search: free text and GHL's filters (see GHL's search documentation).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchRequest {
    /// 1-based; `0` leaves it out (a search past 10,000 pages by `search_after`).
    #[serde(skip_serializing_if = "is_zero")]
    pub page: u32,
    pub page_limit: u32,
    /// The cursor past GHL's 10,000-result reach: the `searchAfter` of the last
    /// contact listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search_after: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Value>,
    /// `[{field, direction}]`, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sort: Vec<Value>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Deserialize)]
pub(super) struct OneContact {
    pub(super) contact: Contact,
}

#[derive(Deserialize)]
pub(super) struct Tags {
    #[serde(default)]
    pub(super) tags: Vec<String>,
}

/// A page of the deprecated list, with its cursor when GHL gives one.
#[derive(Deserialize)]
pub(super) struct ListPage {
    #[serde(default)]
    pub(super) contacts: Vec<Contact>,
    #[serde(default)]
    pub(super) meta: Option<ListMeta>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListMeta {
    pub(super) start_after_id: Option<String>,
    pub(super) start_after: Option<i64>,
}
