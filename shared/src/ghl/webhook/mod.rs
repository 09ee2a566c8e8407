//! GHL webhooks: typed payloads, signature verification and replay protection.
//!
//! Bodies are flat JSON (`type`, `locationId`, the entity's fields, and on real
//! deliveries `timestamp`, `webhookId`, `appId`, `versionId`). Fields we do not type
//! are kept; a `type` we do not know becomes [`Webhook::Unknown`], so a new GHL event
//! never fails the pipeline.

mod apps;
mod lenient;
mod payload;
mod replay;
mod signature;

use serde::Deserialize;
use serde::de::DeserializeOwned;

pub use apps::{APP_ID_VAR, AppIds};
use payload::Payload;
pub use payload::{
    AppInstall, AppUninstall, Appointment, AppointmentEvent, ContactEvent, Envelope, MessageEvent,
    NoteEvent, OpportunityEvent, TaskEvent, UnknownEvent,
};
pub use replay::{ReplayError, ReplayWindow};
pub use signature::{KeyError, SignatureError, SignatureHeaders, Verified, WebhookKeys};

/// A parsed webhook, by its `type`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Webhook {
    ContactCreate(ContactEvent),
    ContactUpdate(ContactEvent),
    ContactDelete(ContactEvent),
    ContactTagUpdate(ContactEvent),
    ContactDndUpdate(ContactEvent),
    NoteCreate(NoteEvent),
    NoteUpdate(NoteEvent),
    NoteDelete(NoteEvent),
    TaskCreate(TaskEvent),
    TaskComplete(TaskEvent),
    TaskDelete(TaskEvent),
    AppointmentCreate(AppointmentEvent),
    AppointmentUpdate(AppointmentEvent),
    AppointmentDelete(AppointmentEvent),
    OpportunityCreate(OpportunityEvent),
    OpportunityUpdate(OpportunityEvent),
    OpportunityDelete(OpportunityEvent),
    OpportunityStageUpdate(OpportunityEvent),
    OpportunityStatusUpdate(OpportunityEvent),
    OpportunityMonetaryValueUpdate(OpportunityEvent),
    OpportunityAssignedToUpdate(OpportunityEvent),
    InboundMessage(MessageEvent),
    OutboundMessage(MessageEvent),
    AppInstall(AppInstall),
    AppUninstall(AppUninstall),
    /// A `type` this version does not model (or none at all), kept whole.
    Unknown(UnknownEvent),
}

/// Why a body is not a webhook we can accept.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("body is not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("body is not a JSON object")]
    NotAnObject,
    #[error("{kind} webhook is malformed: {source}")]
    Malformed {
        kind: String,
        #[source]
        source: FieldError,
    },
}

/// Which field of a body did not read, and as what it was expected; never the
/// value it held (a letter and a log line carry this, and a value may be an
/// e-mail or a phone).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}{at}", at = if self.field.is_empty() { String::new() } else { format!(" (field `{}`)", self.field) })]
pub struct FieldError {
    /// Its path in the body (`attributionSource.fbclid`, `customFields[2].value`).
    pub field: String,
    /// What was wrong, without the value: `invalid type, expected a string`.
    pub what: String,
}

impl FieldError {
    /// `error` at `field`, its words stripped of the value it quotes.
    pub fn of(field: &str, error: &serde_json::Error) -> Self {
        let text = error.to_string();
        let text = without_position(&text);
        // The last `, expected` is serde's: the value before it may hold the words.
        let what = match text.rsplit_once(", expected ") {
            // `invalid type: string "…", expected u64`: the value goes.
            Some((found, expected)) => {
                let found = found.split([':', '`', '"']).next().unwrap_or_default();
                format!("{}, expected {expected}", found.trim())
            }
            // `missing field `id``, syntax errors: no value in them.
            None => text.to_owned(),
        };
        FieldError {
            field: if field == "." {
                String::new()
            } else {
                field.to_owned()
            },
            what,
        }
    }
}

/// serde's words without the ` at line 1 column 9` it ends with, if it does (a
/// value may hold ` at line ` too).
fn without_position(text: &str) -> &str {
    let numbers = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match text.rsplit_once(" at line ") {
        Some((words, at))
            if at
                .split_once(" column ")
                .is_some_and(|(line, column)| numbers(line) && numbers(column)) =>
        {
            words
        }
        _ => text,
    }
}

#[derive(Deserialize)]
struct TypeProbe {
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

fn typed<T: DeserializeOwned>(
    body: &[u8],
    kind: &str,
    wrap: fn(T) -> Webhook,
) -> Result<Webhook, ParseError> {
    serde_json::from_slice(body).map(wrap).map_err(|plain| {
        // Read again, rarely, to name the field (tracking it costs every read).
        let mut read = serde_json::Deserializer::from_slice(body);
        let mut source = match serde_path_to_error::deserialize::<_, T>(&mut read) {
            Err(e) => FieldError::of(&e.path().to_string(), e.inner()),
            Ok(_) => FieldError::of("", &plain),
        };
        if source.field.is_empty() {
            source.field = culprit::<T>(body, &plain);
        }
        ParseError::Malformed {
            kind: kind.to_owned(),
            source,
        }
    })
}

/// The top-level field whose removal changes how `body` fails to read as `T`:
/// the one at fault, where a flattened struct hides the path.
fn culprit<T: DeserializeOwned>(body: &[u8], failed: &serde_json::Error) -> String {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(body) else {
        return String::new();
    };
    let said = |e: &serde_json::Error| e.to_string().split(" at line ").next().map(str::to_owned);
    let first = said(failed);
    for key in fields.keys() {
        let mut without = fields.clone();
        without.remove(key);
        match serde_json::from_value::<T>(serde_json::Value::Object(without)) {
            Err(e) if said(&e) == first => {}
            _ => return key.clone(),
        }
    }
    String::new()
}

impl Webhook {
    /// Parses a webhook body. Use the bytes exactly as received, after
    /// [`WebhookKeys::verify`] accepted them.
    /// A body that fails only because GHL wrote a number as text (or the reverse)
    /// is read again with those values in their type.
    pub fn parse(body: &[u8]) -> Result<Webhook, ParseError> {
        // Reads only `type` (skipping the rest) before the typed parse below.
        let probe: TypeProbe = serde_json::from_slice(body).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => ParseError::NotAnObject,
            _ => ParseError::Json(e),
        })?;
        let kind = probe.kind.unwrap_or_default();
        Self::parse_as(body, &kind).or_else(|first| {
            lenient::coerced(body)
                .and_then(|fixed| Self::parse_as(&fixed, &kind).ok())
                .ok_or(first)
        })
    }

    /// The typed parse of a body of type `kind`.
    fn parse_as(body: &[u8], kind: &str) -> Result<Webhook, ParseError> {
        let kind = kind.to_owned();
        use Webhook as W;
        match kind.as_str() {
            "ContactCreate" => typed(body, &kind, W::ContactCreate),
            "ContactUpdate" => typed(body, &kind, W::ContactUpdate),
            "ContactDelete" => typed(body, &kind, W::ContactDelete),
            "ContactTagUpdate" => typed(body, &kind, W::ContactTagUpdate),
            "ContactDndUpdate" => typed(body, &kind, W::ContactDndUpdate),
            "NoteCreate" => typed(body, &kind, W::NoteCreate),
            "NoteUpdate" => typed(body, &kind, W::NoteUpdate),
            "NoteDelete" => typed(body, &kind, W::NoteDelete),
            "TaskCreate" => typed(body, &kind, W::TaskCreate),
            "TaskComplete" => typed(body, &kind, W::TaskComplete),
            "TaskDelete" => typed(body, &kind, W::TaskDelete),
            "AppointmentCreate" => typed(body, &kind, W::AppointmentCreate),
            "AppointmentUpdate" => typed(body, &kind, W::AppointmentUpdate),
            "AppointmentDelete" => typed(body, &kind, W::AppointmentDelete),
            "OpportunityCreate" => typed(body, &kind, W::OpportunityCreate),
            "OpportunityUpdate" => typed(body, &kind, W::OpportunityUpdate),
            "OpportunityDelete" => typed(body, &kind, W::OpportunityDelete),
            "OpportunityStageUpdate" => typed(body, &kind, W::OpportunityStageUpdate),
            "OpportunityStatusUpdate" => typed(body, &kind, W::OpportunityStatusUpdate),
            "OpportunityMonetaryValueUpdate" => {
                typed(body, &kind, W::OpportunityMonetaryValueUpdate)
            }
            "OpportunityAssignedToUpdate" => typed(body, &kind, W::OpportunityAssignedToUpdate),
            "InboundMessage" => typed(body, &kind, W::InboundMessage),
            "OutboundMessage" => typed(body, &kind, W::OutboundMessage),
            "INSTALL" => typed(body, &kind, W::AppInstall),
            "UNINSTALL" => typed(body, &kind, W::AppUninstall),
            _ => typed(body, &kind, W::Unknown),
        }
    }

    /// The `type` as GHL sent it (`""` when there was none): the one [`Webhook::parse`]
    /// chose the variant by.
    pub fn kind(&self) -> &str {
        self.envelope().kind.as_deref().unwrap_or_default()
    }

    /// The payload, whatever its kind.
    fn payload(&self) -> &dyn Payload {
        match self {
            Webhook::ContactCreate(e)
            | Webhook::ContactUpdate(e)
            | Webhook::ContactDelete(e)
            | Webhook::ContactTagUpdate(e)
            | Webhook::ContactDndUpdate(e) => e,
            Webhook::NoteCreate(e) | Webhook::NoteUpdate(e) | Webhook::NoteDelete(e) => e,
            Webhook::TaskCreate(e) | Webhook::TaskComplete(e) | Webhook::TaskDelete(e) => e,
            Webhook::AppointmentCreate(e)
            | Webhook::AppointmentUpdate(e)
            | Webhook::AppointmentDelete(e) => e,
            Webhook::OpportunityCreate(e)
            | Webhook::OpportunityUpdate(e)
            | Webhook::OpportunityDelete(e)
            | Webhook::OpportunityStageUpdate(e)
            | Webhook::OpportunityStatusUpdate(e)
            | Webhook::OpportunityMonetaryValueUpdate(e)
            | Webhook::OpportunityAssignedToUpdate(e) => e,
            Webhook::InboundMessage(e) | Webhook::OutboundMessage(e) => e,
            Webhook::AppInstall(e) => e,
            Webhook::AppUninstall(e) => e,
            Webhook::Unknown(e) => e,
        }
    }

    /// The delivery envelope (`type`, `locationId`, `timestamp`, `webhookId`, …).
    pub fn envelope(&self) -> &Envelope {
        self.payload().envelope()
    }

    /// The contact the webhook is about, when it names one.
    pub fn contact_id(&self) -> Option<&str> {
        self.payload().contact_id()
    }

    /// The contact the webhook carries whole, with every tag it has: a contact's
    /// creation, update or tag change.
    pub fn carried(&self) -> Option<&super::Contact> {
        match self {
            Webhook::ContactCreate(e)
            | Webhook::ContactUpdate(e)
            | Webhook::ContactTagUpdate(e) => Some(&e.contact),
            _ => None,
        }
    }

    /// The sub-account (location) the webhook belongs to.
    pub fn location_id(&self) -> Option<&str> {
        self.envelope().location_id.as_deref()
    }
}

/// The idempotency key of a delivery: GHL's `webhookId` when present, otherwise a
/// digest of the body (so a redelivery of the same bytes still deduplicates).
pub fn idempotency_key(envelope: &Envelope, body: &[u8]) -> String {
    match &envelope.webhook_id {
        Some(id) => id.clone(),
        None => format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body))
        ),
    }
}
