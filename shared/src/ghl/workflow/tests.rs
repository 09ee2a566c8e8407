//! Reading workflow calls: the standard payload, custom bodies, what is missing.

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

/// An opportunity trigger's call, as the plain action sends it (`ghl-api.md` §8.1).
fn opportunity_call() -> Value {
    json!({
        "contact_id": "c1", "first_name": "Ana", "email": "ana@example.com",
        "tags": "lead", "How can we help?": "A new roof", "PropertyAddress": "1 Main St",
        "id": "opp-1", "opportunity_name": "Ana - roof", "status": "won", "lead_value": "1500.50",
        "opportunity_source": "website", "pipeline_id": "pipe-1", "pipeline_name": "Sales",
        "pipleline_stage": "Booked",
        "location": {"id": "loc", "name": "Shop"}, "workflow": {"id": "wf-9", "name": "Won deal"},
        "triggerData": {}, "customData": {"trigger": "opportunity.status_changed"},
    })
}

#[test]
fn an_opportunity_triggers_call_carries_the_opportunity_and_the_custom_fields_by_name() {
    let c = call(opportunity_call()).expect("a call");
    assert_eq!(c.trigger.as_deref(), Some("opportunity.status_changed"));
    let o = c.opportunity.as_ref().expect("an opportunity");
    assert_eq!(o["id"], "opp-1");
    assert_eq!(o["status"], "won");
    assert_eq!(o["monetaryValue"], 1500.5);
    assert_eq!(o["pipelineId"], "pipe-1");
    assert_eq!(o["pipelineStageName"], "Booked");
    assert_eq!(o["name"], "Ana - roof");
    assert_eq!(o["source"], "website");
    assert_eq!(o["contactId"], "c1");
    assert!(c.appointment.is_none());
    assert_eq!(
        c.contact.custom_field("How can we help?"),
        Some(&json!("A new roof"))
    );
    assert_eq!(
        c.contact.custom_field("PropertyAddress"),
        Some(&json!("1 Main St"))
    );
    assert!(
        c.contact.custom_field("status").is_none() && c.contact.custom_field("email").is_none(),
        "standard fields are not custom fields"
    );

    // One capture shows the flat `id` equal to the pipeline's: it is not the
    // opportunity's, which is then the contact's in that pipeline.
    let mut quirk = opportunity_call();
    quirk["id"] = json!("pipe-1");
    let c = call(quirk).expect("a call");
    assert_eq!(c.opportunity.expect("one")["id"], "c1@pipe-1");
    let contact_only = json!({"contact_id": "c1", "location": {"id": "loc"}, "workflow": "w"});
    assert!(call(contact_only).expect("a call").opportunity.is_none());
}

#[test]
fn an_appointment_triggers_call_carries_the_appointment_its_times_in_the_calendars_zone() {
    let body = json!({
        "contact_id": "c1", "location": {"id": "loc"}, "workflow": {"id": "wf-2", "name": "Booked"},
        "calendar": {"id": "cal-1", "calendarName": "Consultations", "title": "Roof check",
            "appointmentId": "appt-1", "startTime": "2026-12-10T14:00:00",
            "endTime": "2026-07-01 09:30:00", "selectedTimezone": "Europe/Berlin",
            "status": "booked", "appoinmentStatus": "confirmed", "date_created": "2026-12-01T10:00:00.000Z"},
    });
    let c = call(body).expect("a call");
    let a = c.appointment.as_ref().expect("an appointment");
    assert_eq!(a["id"], "appt-1");
    assert_eq!(a["calendarId"], "cal-1");
    assert_eq!(
        a["appointmentStatus"], "confirmed",
        "the appointment's, not the slot's"
    );
    assert_eq!(
        a["startTime"], "2026-12-10T14:00:00+01:00",
        "winter in Berlin"
    );
    assert_eq!(
        a["endTime"], "2026-07-01T09:30:00+02:00",
        "summer in Berlin"
    );
    assert_eq!(a["dateAdded"], "2026-12-01T10:00:00.000Z");
    assert!(c.opportunity.is_none());
    let webhook = c
        .webhook(
            "AppointmentCreate",
            "ev-1",
            "2026-12-01T10:00:05Z".parse().expect("time"),
        )
        .expect("told as a booking");
    assert_eq!(webhook["appointment"]["id"], "appt-1");
    assert_eq!(webhook["webhookId"], "ev-1:AppointmentCreate");
    assert!(
        c.webhook("OpportunityCreate", "ev-1", chrono::Utc::now())
            .is_none()
    );

    assert_eq!(
        told::with_offset("2026-12-10T14:00:00Z", Some("Europe/Berlin")),
        "2026-12-10T14:00:00Z"
    );
    assert_eq!(
        told::with_offset("10 Dec 2 pm", Some("Europe/Berlin")),
        "10 Dec 2 pm",
        "unread: kept"
    );
    assert_eq!(
        told::with_offset("2026-12-10 14:00", Some("Mars/Olympus")),
        "2026-12-10 14:00"
    );
}

#[test]
fn a_call_takes_its_key_out_of_its_body_wherever_it_is() {
    let mut body = object_of(
        br#"{"apiKey": "k1", "customData": {"api_key": "k2", "plan": "gold"}, "contact_id": "c"}"#,
    )
    .expect("object");
    assert_eq!(
        take_key(&mut body).as_deref(),
        Some("k1"),
        "the top level's first"
    );
    let text = Value::Object(body).to_string();
    assert!(!text.contains("k1") && !text.contains("k2"), "{text}");
    assert!(text.contains("gold"));
}
