//! Payload structs of the webhooks we model. Each keeps fields it does not type in
//! `extra`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ghl::Contact;
use crate::ghl::parse_timestamp;

/// What the webhook enum needs of every payload.
pub(super) trait Payload {
    fn envelope(&self) -> &Envelope;
    /// The contact the payload is about, when it names one.
    fn contact_id(&self) -> Option<&str> {
        None
    }
}

/// Implements [`Payload`]; `contact` says where the contact id is.
macro_rules! payload {
    ($ty:ty) => {
        impl Payload for $ty {
            fn envelope(&self) -> &Envelope {
                &self.envelope
            }
        }
    };
    ($ty:ty, |$e:ident| $contact:expr) => {
        impl Payload for $ty {
            fn envelope(&self) -> &Envelope {
                &self.envelope
            }
            fn contact_id(&self) -> Option<&str> {
                let $e = self;
                $contact
            }
        }
    };
}

payload!(ContactEvent, |e| Some(&e.contact.id));
payload!(NoteEvent, |e| e.contact_id.as_deref());
payload!(TaskEvent, |e| e.contact_id.as_deref());
payload!(AppointmentEvent, |e| e.appointment.contact_id.as_deref());
payload!(OpportunityEvent, |e| e.contact_id.as_deref());
payload!(MessageEvent, |e| e.contact_id.as_deref());
payload!(AppInstall);
payload!(AppUninstall);
payload!(UnknownEvent);

/// What every delivery carries besides its entity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// The webhook `type` as sent (`ContactCreate`, `INSTALL`, …).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    /// ISO-8601 time GHL sent the delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Unique per delivery; the idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
}

impl Envelope {
    /// The envelope of any JSON object, each field taken when it is text, and the
    /// contact it names (`contactId`, or a contact event's `id`): enough to time,
    /// key and group a delivery whose entity fails typed parsing. `None` when the
    /// body is not a JSON object.
    pub fn of(body: &[u8]) -> Option<(Envelope, Option<String>)> {
        let fields: Map<String, Value> = serde_json::from_slice(body).ok()?;
        let text = |name: &str| fields.get(name).and_then(Value::as_str).map(str::to_owned);
        let kind = text("type");
        let contact = text("contactId").or_else(|| {
            kind.as_deref()
                .filter(|k| k.starts_with("Contact"))
                .and_then(|_| text("id"))
        });
        let envelope = Envelope {
            location_id: text("locationId"),
            timestamp: text("timestamp"),
            webhook_id: text("webhookId"),
            app_id: text("appId"),
            version_id: text("versionId"),
            kind,
        };
        Some((envelope, contact))
    }

    /// The delivery time, parsed.
    pub fn sent_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.timestamp.as_deref().and_then(parse_timestamp)
    }
}

/// Contact{Create,Update,Delete,TagUpdate,DndUpdate}: the whole contact, flat. The
/// envelope owns `type` and `locationId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactEvent {
    #[serde(flatten)]
    pub envelope: Envelope,
    #[serde(flatten)]
    pub contact: Contact,
}

/// Note{Create,Update,Delete}.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NoteEvent {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub id: String,
    pub contact_id: Option<String>,
    pub body: Option<String>,
    pub date_added: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Task{Create,Complete,Delete}. Real TaskCreate deliveries may lack `contactId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskEvent {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub id: String,
    pub contact_id: Option<String>,
    pub title: Option<String>,
    pub body: Option<String>,
    pub assigned_to: Option<String>,
    pub due_date: Option<String>,
    pub date_added: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Appointment{Create,Update,Delete}: the appointment is nested.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppointmentEvent {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub appointment: Appointment,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A calendar appointment (times carry their offset).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Appointment {
    pub id: String,
    pub contact_id: Option<String>,
    pub calendar_id: Option<String>,
    pub title: Option<String>,
    pub appointment_status: Option<String>,
    pub source: Option<String>,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub date_added: Option<String>,
    pub date_updated: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The seven Opportunity* events share one shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpportunityEvent {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub id: String,
    pub contact_id: Option<String>,
    pub name: Option<String>,
    pub monetary_value: Option<f64>,
    pub pipeline_id: Option<String>,
    pub pipeline_stage_id: Option<String>,
    /// `open`, `won`, `lost` or `abandoned`.
    pub status: Option<String>,
    pub source: Option<String>,
    pub assigned_to: Option<String>,
    pub date_added: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// InboundMessage / OutboundMessage (SMS, e-mail, calls).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageEvent {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub contact_id: Option<String>,
    pub conversation_id: Option<String>,
    pub message_type: Option<String>,
    pub direction: Option<String>,
    pub date_added: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// INSTALL: an agency or a location installed the app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppInstall {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub company_id: Option<String>,
    pub user_id: Option<String>,
    pub plan_id: Option<String>,
    pub company_name: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// UNINSTALL: `locationId` or `companyId` names what was removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppUninstall {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub company_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Any other webhook, kept whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnknownEvent {
    #[serde(flatten)]
    pub envelope: Envelope,
    #[serde(flatten)]
    pub body: Map<String, Value>,
}
