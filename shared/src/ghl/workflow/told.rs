//! A call from an opportunity or appointment trigger, told as the webhook GHL would
//! have sent for the same change: the opportunity or appointment it carries in the
//! webhook's own field names, so the rules on those triggers read it through the
//! same `opportunity.*` / `appointment.*` paths, and make the same event ids.
//!
//! What the plain Webhook action adds (`reference/ghl-api.md` §8.1, public
//! captures) \[secondary\]: for opportunity triggers flat `id`, `opportunity_name`,
//! `status`, `lead_value`, `opportunity_source` / `source`, `pipeline_id`,
//! `pipeline_name` and `pipleline_stage` (misspelled so, and the stage's *name*;
//! `pippleine_stage` is reported too); for appointment triggers `calendar {id,
//! calendarName, title, appointmentId, startTime, endTime, selectedTimezone,
//! status, appoinmentStatus (misspelled so), address, date_created, …}`, its times
//! without an offset. A Custom Webhook body may nest either as `opportunity {…}` /
//! `appointment {…}` in the webhooks' names; both are read.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};

use super::WorkflowCall;
use super::fields::{Names, find, text, with_names};

/// An opportunity's fields: the webhook's name, then the plain action's.
const OPPORTUNITY: [(&str, Names); 8] = [
    ("name", &["opportunity_name", "opportunityName"]),
    ("status", &[]),
    ("pipelineId", &["pipeline_id"]),
    ("pipelineName", &["pipeline_name"]),
    ("pipelineStageId", &["pipeline_stage_id"]),
    (
        "pipelineStageName",
        &[
            "pipleline_stage",
            "pippleine_stage",
            "pipeline_stage",
            "pipeline_stage_name",
        ],
    ),
    ("source", &["opportunity_source"]),
    ("assignedTo", &["assigned_to"]),
];
/// What tells that a body carries an opportunity (the contact's fields never do).
const OPPORTUNITY_MARKS: Names = &[
    "opportunity_name",
    "pipeline_id",
    "pipleline_stage",
    "pippleine_stage",
    "pipeline_stage",
    "lead_value",
];
/// An appointment's fields: the webhook's name, then the plain action's.
const APPOINTMENT: [(&str, Names); 5] = [
    ("title", &[]),
    (
        "appointmentStatus",
        &["appoinmentStatus", "appointment_status", "status"],
    ),
    ("address", &[]),
    ("calendarName", &["calendar_name"]),
    ("dateAdded", &["date_created", "dateCreated"]),
];

/// The first of `names` present in the nested object, else at the top level.
fn either<'a>(
    nested: &'a Map<String, Value>,
    top: &'a Map<String, Value>,
    names: &[&str],
) -> Option<&'a Value> {
    find(nested, names).or_else(|| find(top, names))
}

/// The opportunity the body carries, in the webhook's names; `None` when it
/// carries none. Its id is `opportunity_id`, else the flat `id` unless that is the
/// pipeline's (one capture shows them equal), else one made of the contact and the
/// pipeline (GHL keeps one opportunity per contact and pipeline by default).
pub(super) fn opportunity(
    body: &Map<String, Value>,
    contact_id: &str,
) -> Option<Map<String, Value>> {
    let empty = Map::new();
    let nested = body
        .get("opportunity")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    if nested.is_empty() && find(body, OPPORTUNITY_MARKS).is_none() {
        return None;
    }
    let mut o = Map::new();
    for (field, others) in OPPORTUNITY {
        if let Some(value) = either(nested, body, &with_names(field, others)).and_then(text) {
            o.insert(field.into(), value.into());
        }
    }
    // A value GHL wrote as text is read as the number it is; any other is left out.
    let value = either(
        nested,
        body,
        &["monetaryValue", "lead_value", "monetary_value"],
    );
    let amount = value.and_then(text).and_then(|v| v.parse::<f64>().ok());
    if let Some(amount) = amount.filter(|a| a.is_finite()) {
        o.insert("monetaryValue".into(), json!(amount));
    }
    let pipeline = o
        .get("pipelineId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let flat = find(body, &["id"])
        .and_then(text)
        .filter(|id| Some(id) != pipeline.as_ref());
    let id = find(nested, &["id"])
        .or_else(|| find(body, &["opportunity_id", "opportunityId"]))
        .and_then(text)
        .or(flat)
        .unwrap_or_else(|| format!("{contact_id}@{}", pipeline.as_deref().unwrap_or("pipeline")));
    o.insert("id".into(), id.into());
    o.insert("contactId".into(), contact_id.into());
    Some(o)
}

/// The appointment the body carries, in the webhook's names, its times with their
/// offset; `None` when it carries none. Its id is the calendar's `appointmentId`.
pub(super) fn appointment(
    body: &Map<String, Value>,
    contact_id: &str,
) -> Option<Map<String, Value>> {
    let (calendar, nested) = (
        body.get("calendar").and_then(Value::as_object),
        body.get("appointment").and_then(Value::as_object),
    );
    let source = nested.or(calendar)?;
    let id = find(source, &["appointmentId", "appointment_id"])
        .or_else(|| nested.and_then(|n| find(n, &["id"])))
        .and_then(text)?;
    let mut a = Map::new();
    a.insert("id".into(), id.into());
    a.insert("contactId".into(), contact_id.into());
    let calendar_id = match nested {
        Some(n) => find(n, &["calendarId", "calendar_id"]),
        None => find(source, &["id"]),
    };
    if let Some(calendar_id) = calendar_id.and_then(text) {
        a.insert("calendarId".into(), calendar_id.into());
    }
    for (field, others) in APPOINTMENT {
        if let Some(value) = find(source, &with_names(field, others)).and_then(text) {
            a.insert(field.into(), value.into());
        }
    }
    let zone = find(
        source,
        &["selectedTimezone", "selected_timezone", "timezone"],
    )
    .and_then(text);
    for (field, names) in [
        ("startTime", ["startTime", "start_time"]),
        ("endTime", ["endTime", "end_time"]),
    ] {
        if let Some(time) = find(source, &names).and_then(text) {
            a.insert(field.into(), with_offset(&time, zone.as_deref()).into());
        }
    }
    if let Some(zone) = zone {
        a.insert("selectedTimezone".into(), zone.into());
    }
    Some(a)
}

/// `time` with its offset: as it is when it has one (or cannot be read), else
/// read as wall-clock time in `zone` (an IANA name, such as `Europe/Berlin`).
pub(super) fn with_offset(time: &str, zone: Option<&str>) -> String {
    if DateTime::parse_from_rfc3339(time).is_ok() {
        return time.to_owned();
    }
    let naive = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(time, format).ok());
    let zone = zone.and_then(|z| z.parse::<chrono_tz::Tz>().ok());
    match (naive, zone) {
        // At a clock change, the earlier of two readings (a skipped hour: none).
        (Some(naive), Some(zone)) => zone
            .from_local_datetime(&naive)
            .earliest()
            .map_or_else(|| time.to_owned(), |t| t.to_rfc3339()),
        _ => time.to_owned(),
    }
}

impl WorkflowCall {
    /// The webhook of `kind` (`OpportunityStageUpdate`, `AppointmentCreate`, …)
    /// GHL would have sent for the change the call tells of, at `at`, known by
    /// the call's event id; `None` when the call does not carry what `kind` is
    /// about.
    pub fn webhook(&self, kind: &str, event_id: &str, at: DateTime<Utc>) -> Option<Value> {
        let mut body = match kind {
            "OpportunityCreate"
            | "OpportunityStatusUpdate"
            | "OpportunityStageUpdate"
            | "OpportunityMonetaryValueUpdate" => self.opportunity.clone()?,
            "AppointmentCreate" | "AppointmentUpdate" => {
                let mut body = Map::new();
                body.insert(
                    "appointment".into(),
                    Value::Object(self.appointment.clone()?),
                );
                body
            }
            _ => return None,
        };
        body.insert("type".into(), kind.into());
        body.insert("locationId".into(), self.location_id.clone().into());
        body.insert("webhookId".into(), format!("{event_id}:{kind}").into());
        body.insert("timestamp".into(), at.to_rfc3339().into());
        Some(Value::Object(body))
    }
}
