//! Building one Conversions API event from a rule, a contact and what happened.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::path::{Subject, as_number, as_text};
use super::{Defaults, Rule, Source, Trigger};
use crate::capi::{
    ActionSource, CustomData, Rejection, ServerEvent, UserData, canonical_event_name,
    fbc_from_click, validate, write_event_id,
};
use crate::ghl::Contact;
use crate::normalize::Field;

fn text(source: Option<&Source>, subject: &Subject<'_>) -> Option<String> {
    source
        .and_then(|s| s.resolve(subject))
        .as_ref()
        .and_then(as_text)
}

pub(super) fn event(
    rule: &Rule,
    defaults: &Defaults,
    subject: &Subject<'_>,
    now: DateTime<Utc>,
) -> Result<ServerEvent, Rejection> {
    let mut event = ServerEvent::default();
    event_into(rule, defaults, subject, now, &mut event)?;
    Ok(event)
}

/// Builds the event into `event`, whatever it held before; its strings and
/// `user_data` lists keep their allocations.
pub(super) fn event_into(
    rule: &Rule,
    defaults: &Defaults,
    subject: &Subject<'_>,
    now: DateTime<Utc>,
    event: &mut ServerEvent,
) -> Result<(), Rejection> {
    let occurrence = subject.occurrence;
    let contact = subject.contact;
    let source = rule.action_source.unwrap_or(defaults.action_source);
    let posted = occurrence
        .trigger
        .takes_caller_event_id()
        .then_some(occurrence.entity.as_ref())
        .flatten();

    // Every field is named, so one added later cannot keep the last event's value.
    let ServerEvent {
        event_name,
        event_time,
        event_id,
        action_source,
        event_source_url,
        referrer_url,
        user_data,
        custom_data: custom,
        data_processing_options,
        data_processing_options_country,
        data_processing_options_state,
        opt_out,
        original_event_data,
    } = event;
    write_event_name(event_name, &rule.event_name, subject);
    *event_time = occurrence.at.timestamp();
    // The caller's own id is kept verbatim (see `Trigger::takes_caller_event_id`).
    match posted.and_then(|c| c.get("eventId")).and_then(as_text) {
        Some(id) => *event_id = Some(id),
        None => write_event_id(
            event_id.get_or_insert_default(),
            &occurrence.location_id,
            &occurrence.contact_id,
            &rule.name,
            &occurrence.change,
        ),
    }
    *action_source = source;
    *event_source_url = (source == ActionSource::Website)
        .then(|| attribution_url(contact))
        .flatten();
    *referrer_url = None;

    user_data.clear();
    fill_user_data(contact, user_data);
    let external_id = text(rule.external_id.as_ref(), subject);
    user_data.add(
        Field::ExternalId,
        external_id.as_deref().unwrap_or(&contact.id),
        None,
    );
    user_data.lead_id = text(rule.lead_id.as_ref(), subject).and_then(|id| id.trim().parse().ok());

    // A posted conversion's `customData` is meant for Meta; a workflow call's is
    // whatever the user added to the action (reach it with `workflow.customData.…`).
    let passed = posted.filter(|_| occurrence.trigger == Trigger::ConversionPosted);
    *custom = custom_data(rule, defaults, subject, source, passed);
    data_processing_options.clear();
    *data_processing_options_country = None;
    *data_processing_options_state = None;
    if let Some((country, state)) = rule.limited_data_use.options(subject) {
        data_processing_options.push("LDU".to_owned());
        *data_processing_options_country = Some(country);
        *data_processing_options_state = Some(state);
    }
    *opt_out = None;
    *original_event_data = None;
    validate(event, now.timestamp())
}

/// The contact's raw identifiers, by the `user_data` key they feed. A contact with
/// only a full `name` gives first and last name from it.
pub fn identity(contact: &Contact) -> impl Iterator<Item = (Field, &str)> {
    let (first, last) = match (
        contact.first_name.as_deref(),
        contact.last_name.as_deref(),
        contact.name.as_deref(),
    ) {
        (None, None, Some(full)) => {
            let mut parts = full.trim().splitn(2, char::is_whitespace);
            (parts.next(), parts.next())
        }
        (first, last, _) => (first, last),
    };
    [
        (Field::Email, contact.email.as_deref()),
        (Field::Phone, contact.phone.as_deref()),
        (Field::FirstName, first),
        (Field::LastName, last),
        (Field::DateOfBirth, contact.date_of_birth.as_deref()),
        (Field::City, contact.city.as_deref()),
        (Field::State, contact.state.as_deref()),
        (Field::Zip, contact.postal_code.as_deref()),
        (Field::Country, contact.country.as_deref()),
    ]
    .into_iter()
    .filter_map(|(field, value)| Some((field, value?)))
}

/// The event name, written over `out`: a constant is canonical already (checked at
/// load); one read from a field is spelled as Meta spells it if it names a standard
/// event.
fn write_event_name(out: &mut String, source: &Source, subject: &Subject<'_>) {
    match source {
        Source::Constant(Value::String(name)) => {
            out.clear();
            out.push_str(name);
        }
        other => {
            *out = text(Some(other), subject)
                .map(|n| canonical_event_name(&n))
                .unwrap_or_default();
        }
    }
}

fn fill_user_data(contact: &Contact, ud: &mut UserData) {
    let country = contact.country.as_deref();
    for (field, value) in identity(contact) {
        ud.add(field, value, country);
    }

    // First touch, then last touch: click ids are kept exactly as GHL recorded them.
    let touches = [
        &contact.attribution_source,
        &contact.last_attribution_source,
    ];
    let first_of = |get: fn(&crate::ghl::AttributionSource) -> &Option<String>| {
        touches
            .iter()
            .copied()
            .flatten()
            .find_map(|a| get(a).clone().filter(|v| !v.trim().is_empty()))
    };
    let created_ms = contact.date_added().map(|t| t.timestamp_millis());
    ud.fbc = first_of(|a| &a.fbc).or_else(|| {
        touches
            .iter()
            .copied()
            .flatten()
            .find_map(|a| fbc_from_click(a.fbclid.as_deref()?, created_ms?))
    });
    ud.fbp = first_of(|a| &a.fbp);
    ud.client_ip_address = first_of(|a| &a.ip);
    ud.client_user_agent = first_of(|a| &a.user_agent);
}

fn attribution_url(contact: &Contact) -> Option<String> {
    [
        &contact.attribution_source,
        &contact.last_attribution_source,
    ]
    .into_iter()
    .flatten()
    .find_map(|a| a.url.clone())
}

fn custom_data(
    rule: &Rule,
    defaults: &Defaults,
    subject: &Subject<'_>,
    action_source: ActionSource,
    posted: Option<&Value>,
) -> CustomData {
    let mut data = free_keys(rule, subject, posted);
    let value = rule
        .value
        .as_ref()
        .and_then(|s| s.resolve(subject))
        .as_ref()
        .and_then(as_number);
    if value.is_some() {
        data.value = value;
    }
    let currency = text(rule.currency.as_ref(), subject)
        .or_else(|| value.and(defaults.currency.clone()))
        .map(|c| c.trim().to_ascii_uppercase());
    if currency.is_some() {
        data.currency = currency;
    }
    if action_source == ActionSource::SystemGenerated
        && let Some(crm) = &defaults.lead_event_source
    {
        data.lead_event_source = Some(crm.clone());
        data.event_source = Some("crm".to_owned());
    }
    data
}

/// The rule's `custom_data` keys, over a posted conversion's own `customData`.
fn free_keys(rule: &Rule, subject: &Subject<'_>, posted: Option<&Value>) -> CustomData {
    let mut fields = Map::new();
    if let Some(Value::Object(extra)) = posted.and_then(|c| c.get("customData")) {
        fields.extend(extra.clone());
    }
    for (key, source) in &rule.custom_data {
        if let Some(v) = source.resolve(subject) {
            fields.insert(key.clone(), v);
        }
    }
    if fields.is_empty() {
        return CustomData::default();
    }
    // A key of the wrong type for one of Meta's standard fields (say a text
    // `num_items`) is dropped on its own rather than losing the whole custom_data.
    serde_json::from_value(Value::Object(fields.clone())).unwrap_or_else(|_| {
        let valid: Map<String, Value> = fields
            .into_iter()
            .filter(|(k, v)| {
                let one = Map::from_iter([(k.clone(), v.clone())]);
                serde_json::from_value::<CustomData>(Value::Object(one)).is_ok()
            })
            .collect();
        serde_json::from_value(Value::Object(valid)).unwrap_or_default()
    })
}
