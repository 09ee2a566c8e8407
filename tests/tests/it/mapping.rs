//! The declarative mapping: loading (with errors that name their line) and the events
//! it builds from GHL's own webhook examples.

use chrono::{DateTime, Utc};
use ghl_capi::capi::Rejection;
use ghl_capi::ghl::Contact;
use ghl_capi::ghl::webhook::Webhook;
use ghl_capi::jobs::PostedConversion;
use ghl_capi::mapping::{
    Baseline, MappedEvent, Mapping, Need, Occurrence, Subject, TokenRef, Trigger, Unmet,
};
use ghl_capi::normalize::sha256_hex;
use ghl_capi_tests::{fixtures, read_reference};
use serde_json::{Map, json};

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("time")
}

fn webhook(name: &str) -> Webhook {
    Webhook::parse(read_reference(&format!("ghl/webhooks/{name}")).as_bytes())
        .expect("fixture parses")
}

fn contact_of(hook: &Webhook) -> Contact {
    match hook {
        Webhook::ContactCreate(e) | Webhook::ContactUpdate(e) | Webhook::ContactTagUpdate(e) => {
            e.contact.clone()
        }
        _ => panic!("not a contact webhook"),
    }
}

/// A contact as `GET /contacts/{id}` returns it, for webhooks that carry none.
fn enriched_contact(id: &str) -> Contact {
    serde_json::from_value(json!({
        "id": id, "locationId": "ve9EPM428h8vShlRW1KT",
        "firstName": "Mary", "lastName": "O'Brien", "email": " Mary@Example.com ",
        "phone": "(650) 555-1212", "country": "US", "city": "Menlo Park", "state": "California",
        "postalCode": "94025-1234", "dateOfBirth": "1990-12-31T00:00:00.000Z",
        "dateAdded": "2026-11-20T10:00:00.000Z", "tags": ["customer"],
        "attributionSource": {"url": "https://example.com/lp", "fbclid": "IwAR2xYzAbC",
                              "ip": "203.0.113.7", "userAgent": "Mozilla/5.0"}
    }))
    .expect("contact")
}

fn map(mapping: &Mapping, occ: &Occurrence, contact: &Contact, now: &str) -> Vec<MappedEvent> {
    mapping.map(occ, contact, &Map::new(), at(now))
}

/// The built-in mapping's events for the enriched contact, created on 2026-11-21,
/// as judged at `now`.
fn new_contact_judged_at(now: &str) -> Vec<MappedEvent> {
    let contact = enriched_contact("c1");
    let occ = Occurrence::for_contact(Trigger::ContactCreated, "loc", &contact, at(now));
    map(&Mapping::builtin(), &occ, &contact, now)
}

#[test]
fn the_builtin_and_example_mappings_load() {
    let builtin = Mapping::builtin();
    let names: Vec<_> = builtin
        .rules
        .iter()
        .map(|r| (r.trigger, r.name.as_str()))
        .collect();
    assert!(names.contains(&(Trigger::ContactCreated, "new-contact-lead")));
    assert!(names.contains(&(
        Trigger::OpportunityStatusChanged,
        "opportunity-won-purchase"
    )));
    assert!(names.contains(&(Trigger::AppointmentBooked, "appointment-booked-schedule")));

    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/mapping.example.toml");
    let example = Mapping::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(example.pixels.len(), 2);
    assert_eq!(
        example.pixels[0].access_token,
        TokenRef::Secret("ghl-capi/meta/main".into())
    );
    assert_eq!(example.needs(Trigger::ContactCreated), [Need::Attribution]);
    assert!(
        example.audiences.is_empty(),
        "its audiences are commented out"
    );

    // Uncommented as the file says, its audiences load.
    let text = std::fs::read_to_string(&path).expect("example");
    let (head, audiences) = text
        .split_once("# [[audiences]]")
        .expect("audience examples");
    let uncommented: String = std::iter::once("# [[audiences]]")
        .chain(audiences.lines())
        .map(|line| line.strip_prefix("# ").unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n");
    let with = Mapping::parse(&format!("{head}\n{uncommented}"), "example")
        .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = with.audiences.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["webinar-vips", "customers"]);
}

#[test]
fn a_new_contact_becomes_a_lead_with_hashed_identifiers() {
    let hook = webhook("constructed/ContactCreate.delivered.json");
    let contact = contact_of(&hook);
    let occs = Occurrence::from_webhook(&hook, Some(&contact.tags), at("2021-11-26T12:42:00Z")).0;
    assert_eq!(occs.len(), 1, "{occs:?}");
    let events = map(
        &Mapping::builtin(),
        &occs[0],
        &contact,
        "2021-11-26T12:42:00Z",
    );
    assert_eq!(events.len(), 1);
    let event = events[0].outcome.as_ref().expect("valid");
    let json = serde_json::to_value(event).expect("ser");
    assert_eq!(json["event_name"], "Lead");
    // A new contact happened when GHL added it, not when the webhook left.
    assert_eq!(json["event_time"], at("2021-11-26T12:41:02Z").timestamp());
    assert_eq!(json["action_source"], "system_generated");
    let ud = &json["user_data"];
    assert_eq!(ud["em"], json!([sha256_hex("johndeo@gmail.comm")]));
    assert_eq!(ud["ph"], json!([sha256_hex("919509597501")]));
    assert_eq!(ud["fn"], json!([sha256_hex("john")]));
    assert_eq!(ud["ln"], json!([sha256_hex("deo")]));
    assert_eq!(ud["db"], json!([sha256_hex("20000105")]));
    assert_eq!(ud["st"], json!([sha256_hex("al")]));
    assert_eq!(ud["country"], json!([sha256_hex("de")]));
    assert_eq!(ud["zp"], json!([sha256_hex("452001")]));
    assert_eq!(
        ud["external_id"],
        json!([sha256_hex("nmfmqesngz6avpglvuj0")])
    );
    assert_eq!(
        json["custom_data"],
        json!({"lead_event_source": "HighLevel", "event_source": "crm"})
    );
    // The same change redelivered gives the same id, so Meta deduplicates it.
    let again = map(
        &Mapping::builtin(),
        &occs[0],
        &contact,
        "2021-11-26T12:50:00Z",
    );
    assert_eq!(
        again[0].outcome.as_ref().expect("valid").event_id,
        event.event_id
    );
}

#[test]
fn attribution_gives_fbc_fbp_ip_and_user_agent_unhashed() {
    let events = new_contact_judged_at("2026-11-21T00:00:00Z");
    let ud = &events[0].outcome.as_ref().expect("valid").user_data;
    assert_eq!(ud.fbc.as_deref(), Some("fb.1.1795168800000.IwAR2xYzAbC"));
    assert_eq!(ud.client_ip_address.as_deref(), Some("203.0.113.7"));
    assert_eq!(ud.client_user_agent.as_deref(), Some("Mozilla/5.0"));
    assert_eq!(ud.ph, [sha256_hex("16505551212")]);
    assert_eq!(ud.zp, [sha256_hex("94025")]);
    assert_eq!(ud.st, [sha256_hex("ca")]);
    assert_eq!(ud.ct, [sha256_hex("menlopark")]);
}

#[test]
fn a_won_opportunity_is_a_purchase_with_its_value_and_an_open_one_is_nothing() {
    let hook = webhook("OpportunityStatusUpdate.json");
    let now = at("2026-11-21T00:00:00Z");
    let occs = Occurrence::from_webhook(&hook, Some(&[]), now).0;
    assert_eq!(occs.len(), 1);
    let contact = enriched_contact("cJAWDskpkJHbRbhAT7bs");
    assert!(
        Mapping::builtin()
            .map(&occs[0], &contact, &Map::new(), now)
            .is_empty(),
        "status is open"
    );

    let mut won = occs[0].clone();
    won.entity.as_mut().expect("entity")["status"] = "won".into();
    won.change = "wWhVuzqpRuOA1ZVWi4FC:status:won".into();
    let events = Mapping::builtin().map(&won, &contact, &Map::new(), now);
    let purchase = events[0].outcome.as_ref().expect("valid");
    assert_eq!(purchase.event_name, "Purchase");
    assert_eq!(purchase.custom_data.value, Some(40.0));
    assert_eq!(purchase.custom_data.currency.as_deref(), Some("USD"));
}

#[test]
fn a_purchase_without_a_value_is_rejected_with_its_reason() {
    let hook = webhook("OpportunityStatusUpdate.json");
    let now = at("2026-11-21T00:00:00Z");
    let mut occ = Occurrence::from_webhook(&hook, Some(&[]), now).0.remove(0);
    let entity = occ.entity.as_mut().expect("entity");
    entity["status"] = "won".into();
    entity
        .as_object_mut()
        .expect("object")
        .remove("monetaryValue");
    let events = Mapping::builtin().map(&occ, &enriched_contact("c"), &Map::new(), now);
    assert_eq!(events[0].outcome, Err(Rejection::PurchaseWithoutValue));
}

#[test]
fn old_events_are_rejected_not_sent() {
    let events = new_contact_judged_at("2026-12-01T00:00:00Z");
    assert!(matches!(events[0].outcome, Err(Rejection::TooOld { .. })));
}

#[test]
fn an_appointment_booking_is_a_schedule() {
    let hook = webhook("AppointmentCreate.json");
    let now = at("2023-09-26T00:00:00Z");
    let occs = Occurrence::from_webhook(&hook, Some(&[]), now).0;
    let events = Mapping::builtin().map(
        &occs[0],
        &enriched_contact("9NkT25Vor1v4aQatFsv2"),
        &Map::new(),
        now,
    );
    let schedule = events[0].outcome.as_ref().expect("valid");
    assert_eq!(schedule.event_name, "Schedule");
    assert_eq!(schedule.event_time, at("2023-09-25T10:30:00Z").timestamp());
}

const TAG_RULES: &str = r#"
[[rules]]
name = "webinar"
trigger = "contact.tag_added"
tags = ["webinar"]
event_name = "CompleteRegistration"
[rules.custom_data]
content_name = { field = "trigger.tag" }

[[rules]]
name = "unsubscribed"
trigger = "contact.tag_removed"
event_name = "Unsubscribed"
"#;

#[test]
fn tag_rules_fire_on_the_transition_only() {
    let mapping = Mapping::parse(TAG_RULES, "tags.toml").expect("valid");
    let mut hook = webhook("ContactTagUpdate.json");
    if let Webhook::ContactTagUpdate(e) = &mut hook {
        e.contact.tags = vec!["Webinar".into(), "vip".into()];
    }
    let now = at("2026-11-21T00:00:00Z");
    let contact = contact_of(&hook);

    let first = Occurrence::from_webhook(&hook, Some(&["vip".into(), "newsletter".into()]), now).0;
    let kinds: Vec<_> = first
        .iter()
        .map(|o| (o.trigger, o.tag.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        kinds,
        [
            (Trigger::TagAdded, "Webinar".into()),
            (Trigger::TagRemoved, "newsletter".into())
        ]
    );
    let added = mapping.map(&first[0], &contact, &Map::new(), now);
    let registration = added[0].outcome.as_ref().expect("valid");
    assert_eq!(registration.event_name, "CompleteRegistration");
    assert_eq!(
        registration.custom_data.content_name.as_deref(),
        Some("Webinar")
    );
    assert_eq!(
        mapping.map(&first[1], &contact, &Map::new(), now)[0].rule,
        "unsubscribed"
    );

    let seen_already =
        Occurrence::from_webhook(&hook, Some(&["webinar".into(), "vip".into()]), now).0;
    assert!(seen_already.is_empty(), "{seen_already:?}");

    // Never seen before: which tag changed is unknowable, so nothing fires, and
    // the tags are taken as the baseline; a new contact's tags all count as added.
    let (unseen, baseline) = Occurrence::from_webhook(&hook, None, now);
    assert!(
        unseen.is_empty() && baseline == Baseline::Taken,
        "{unseen:?}"
    );
    let mut created = webhook("constructed/ContactCreate.delivered.json");
    if let Webhook::ContactCreate(e) = &mut created {
        e.contact.tags = vec!["Webinar".into()];
    }
    let (new, baseline) = Occurrence::from_webhook(&created, None, now);
    let triggers: Vec<_> = new.iter().map(|o| o.trigger).collect();
    assert_eq!(triggers, [Trigger::ContactCreated, Trigger::TagAdded]);
    assert_eq!(baseline, Baseline::None);
}

#[test]
fn conditions_filter_on_fields_custom_fields_and_tags() {
    let mapping = Mapping::parse(
        r#"
[custom_fields]
order_value = "orderValue"

[[rules]]
name = "big-order"
trigger = "contact.updated"
event_name = "Purchase"
value = { field = "custom.order_value" }
currency = "EUR"
[[rules.when]]
field = "custom.order_value"
greater_than = 100
[[rules.when]]
field = "contact.source"
one_of = ["facebook form", "website"]
[[rules.when]]
lacks_tag = "refunded"
"#,
        "filters.toml",
    )
    .expect("valid");
    let now = at("2026-11-21T00:00:00Z");
    let mut contact = enriched_contact("c1");
    contact.source = Some("Facebook Form".into());
    contact.date_updated = Some("2026-11-20T12:00:00Z".into());
    contact.custom_fields =
        serde_json::from_value(json!([{"id": "orderValue", "value": "250.5"}])).expect("fields");
    let occ = Occurrence::for_contact(Trigger::ContactUpdated, "loc", &contact, now);
    let events = mapping.map(&occ, &contact, &Map::new(), now);
    assert_eq!(
        events[0].outcome.as_ref().expect("valid").custom_data.value,
        Some(250.5)
    );

    contact.tags.push("Refunded".into());
    assert!(mapping.map(&occ, &contact, &Map::new(), now).is_empty());
    contact.tags.clear();
    contact.custom_fields[0].value = json!(99);
    assert!(mapping.map(&occ, &contact, &Map::new(), now).is_empty());
}

#[test]
fn a_posted_conversion_keeps_its_id_value_and_custom_data() {
    let conversion: PostedConversion = serde_json::from_value(json!({
        "locationId": "loc", "eventType": "purchase", "timestamp": "2026-11-20T09:00:00Z",
        "value": 99.5, "currency": "eur", "eventId": "order-1001",
        "customData": {"order_id": "1001", "plan": "pro"}
    }))
    .expect("conversion");
    let now = at("2026-11-20T09:00:05Z");
    let occ = Occurrence::for_conversion("c1", &conversion, now);
    let events = Mapping::builtin().map(&occ, &enriched_contact("c1"), &Map::new(), now);
    let event = events[0].outcome.as_ref().expect("valid");
    assert_eq!(event.event_name, "Purchase");
    assert_eq!(event.event_id.as_deref(), Some("order-1001"));
    assert_eq!(event.custom_data.value, Some(99.5));
    assert_eq!(event.custom_data.currency.as_deref(), Some("EUR"));
    assert_eq!(event.custom_data.order_id.as_deref(), Some("1001"));
    assert_eq!(event.custom_data.extra["plan"], "pro");
}

#[test]
fn map_each_with_a_used_scratch_event_gives_what_map_gives() {
    let now = at("2026-11-21T00:00:00Z");
    let rich = enriched_contact("c1");
    let sparse: Contact = serde_json::from_value(json!({
        "id": "c2", "email": "bo@example.com", "dateAdded": "2026-11-20T12:00:00Z"
    }))
    .expect("contact");
    let hook = webhook("OpportunityStatusUpdate.json");
    let mut won = Occurrence::from_webhook(&hook, Some(&[]), now).0.remove(0);
    won.entity.as_mut().expect("entity")["status"] = "won".into();
    let mut unpriced = won.clone();
    unpriced.entity.as_mut().expect("entity")["monetaryValue"] = json!(null);

    let mapping = Mapping::builtin();
    let created = |c: &Contact| Occurrence::for_contact(Trigger::ContactCreated, "loc", c, now);
    let cases = [
        (created(&rich), &rich),
        (won, &rich),
        (created(&sparse), &sparse),
        (unpriced, &sparse),
        (created(&rich), &rich),
    ];
    let mut scratch = Default::default();
    let mut produced = 0;
    for (occurrence, contact) in &cases {
        let expected = mapping.map(occurrence, contact, &Map::new(), now);
        let mut got = Vec::new();
        let related = Map::new();
        let subject = Subject::new(contact, occurrence, &related);
        mapping.map_each(
            &subject,
            now,
            &mut scratch,
            |_| true,
            |rule, outcome| got.push((rule.name.clone(), outcome.cloned())),
        );
        let expected: Vec<_> = expected.into_iter().map(|m| (m.rule, m.outcome)).collect();
        assert_eq!(got, expected);
        produced += got.len();
        // Rules left out are not built at all.
        mapping.map_each(
            &subject,
            now,
            &mut scratch,
            |_| false,
            |rule, _| panic!("{} was not wanted", rule.name),
        );
    }
    assert_eq!(
        produced,
        cases.len(),
        "every case made one event or rejection"
    );
}

#[test]
fn occurrences_refilled_in_place_equal_fresh_ones() {
    let now = at("2026-11-21T00:00:00Z");
    let one_tag = enriched_contact("c1");
    let mut three_tags = enriched_contact("c2");
    three_tags.tags = vec!["VIP".into(), "lead".into(), "x".into()];
    three_tags.location_id = None;
    let mut all = Vec::new();
    for (trigger, contact) in [
        (Trigger::TagAdded, &three_tags),
        (Trigger::ContactUpdated, &one_tag),
        (Trigger::TagRemoved, &one_tag),
        (Trigger::TagAdded, &three_tags),
        (Trigger::ContactCreated, &three_tags),
    ] {
        Occurrence::refill_for_contact_record(&mut all, (trigger, false), "loc", contact, now);
        assert_eq!(
            all,
            Occurrence::for_contact_record(trigger, "loc", contact, false, now)
        );
    }
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].location_id, "loc");
    assert_eq!(all[0].change, "contact.created:2026-11-20T10:00:00.000Z");
    assert_eq!(all[0].tag, None);

    // Each tag its own occurrence, its change the lowercased tag (no time).
    let removed = (Trigger::TagRemoved, false);
    Occurrence::refill_for_contact_record(&mut all, removed, "loc", &three_tags, now);
    let tags: Vec<_> = all.iter().map(|o| o.tag.as_deref()).collect();
    let changes: Vec<_> = all.iter().map(|o| o.change.as_str()).collect();
    assert_eq!(tags, [Some("VIP"), Some("lead"), Some("x")]);
    assert_eq!(
        changes,
        [
            "contact.tag_removed:vip",
            "contact.tag_removed:lead",
            "contact.tag_removed:x"
        ]
    );

    // A new contact had no tags before: with tag rules listening, each is added.
    let created = (Trigger::ContactCreated, true);
    Occurrence::refill_for_contact_record(&mut all, created, "loc", &three_tags, now);
    let kinds: Vec<_> = all.iter().map(|o| (o.trigger, o.tag.as_deref())).collect();
    assert_eq!(
        kinds,
        [
            (Trigger::ContactCreated, None),
            (Trigger::TagAdded, Some("VIP")),
            (Trigger::TagAdded, Some("lead")),
            (Trigger::TagAdded, Some("x"))
        ]
    );
    assert_eq!(all[1].change, "contact.tag_added:vip");
    assert_eq!(
        all,
        Occurrence::for_contact_record(Trigger::ContactCreated, "loc", &three_tags, true, now)
    );
}

#[test]
fn pixels_are_chosen_by_rule_and_location() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/mapping.example.toml");
    let mapping = Mapping::load(&path).expect("valid");
    let rule = |name: &str| mapping.rules.iter().find(|r| r.name == name).expect("rule");
    let names = |rule, loc| {
        mapping
            .pixels_for(rule, loc)
            .map(|p| p.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(rule("new-contact-lead"), "ve9EPM428h8vShlRW1KT"),
        ["main"]
    );
    assert_eq!(
        names(rule("new-contact-lead"), "0007BWpSzSwfiuSl0tR2"),
        ["second-brand"]
    );
    assert!(names(rule("opportunity-won-purchase"), "0007BWpSzSwfiuSl0tR2").is_empty());
    assert!(names(rule("new-contact-lead"), "elsewhere").is_empty());
}

fn error_of(text: &str) -> String {
    Mapping::parse(text, "mapping.toml")
        .expect_err("must be refused")
        .to_string()
}

#[test]
fn config_errors_name_the_file_the_line_and_the_problem() {
    let cases: [(&str, &str, &str); 11] = [
        (
            "[[rules]]\nname = \"a\"\ntrigger = \"contact.create\"\nevent_name = \"Lead\"\n",
            "mapping.toml:3:",
            "unknown trigger `contact.create`",
        ),
        (
            "[[rules]]\nname = \"a\"\ntrigger = \"contact.created\"\nevent_name = \"purchase\"\n",
            "mapping.toml:4:",
            "spelled `Purchase`",
        ),
        (
            "[[rules]]\nname = \"a\"\ntrigger = \"contact.created\"\nevent_name = \"Lead\"\nstatus = \"won\"\n",
            "mapping.toml:5:",
            "`status` applies to",
        ),
        (
            "[[rules]]\nname = \"a\"\ntrigger = \"contact.created\"\nevent_name = \"Lead\"\nvalue = { field = \"opportunity.monetaryValue\" }\n",
            "mapping.toml:5:",
            "unknown field path `opportunity.monetaryValue`",
        ),
        (
            "[[rules]]\nname = \"a\"\ntrigger = \"contact.created\"\nevent_name = \"Lead\"\ncolour = 1\n",
            "mapping.toml:5:",
            "unknown field `colour`",
        ),
        (
            "[[pixels]]\nname = \"p\"\ndataset_id = \"1\"\naccess_token = \"EAAB1234\"\n",
            "mapping.toml:4:",
            "never put the token itself",
        ),
        (
            "[[pixels]]\nname = \"p\"\ndataset_id = \"abc\"\naccess_token = { env = \"T\" }\n",
            "mapping.toml:3:",
            "numeric id",
        ),
        (
            "[[rules]]\nname = \"a\"\ntrigger = \"contact.created\"\nevent_name = \"Lead\"\npixels = [\"nope\"]\n",
            "mapping.toml:5:",
            "no pixel named `nope`",
        ),
        (
            "[[rules]]\nname = \"a\"\ntrigger = \"contact.created\"\nevent_name = \"Lead\"\n[[rules.when]]\nfield = \"contact.source\"\n",
            "mapping.toml:",
            "needs one test",
        ),
        (
            "[[rules]]\nname = \"a\"\ntrigger = \"contact.created\"\nevent_name = \"Lead\"\n\n[[rules]]\nname = \"a\"\ntrigger = \"contact.created\"\nevent_name = \"Lead\"\n",
            "mapping.toml:7:",
            "already defined",
        ),
        (
            "[defaults]\ncurrency = \"dollars\"\n",
            "mapping.toml:2:",
            "ISO 4217",
        ),
    ];
    for (text, place, problem) in cases {
        let err = error_of(text);
        assert!(
            err.starts_with(place) && err.contains(problem),
            "{err}\n--- for ---\n{text}"
        );
    }
    let syntax = error_of("[[rules]\nname = ");
    assert!(syntax.starts_with("mapping.toml:1:"), "{syntax}");
}

#[test]
fn constant_event_names_are_sent_trimmed() {
    let mapping = Mapping::parse(
        "[[rules]]\nname = \"a\"\ntrigger = \"contact.created\"\nevent_name = \" Lead \"\n",
        "m.toml",
    )
    .expect("valid");
    let contact = enriched_contact("c1");
    let now = at("2026-11-21T00:00:00Z");
    let occ = Occurrence::for_contact(Trigger::ContactCreated, "loc", &contact, now);
    let events = mapping.map(&occ, &contact, &Map::new(), now);
    assert_eq!(
        events[0].outcome.as_ref().expect("valid").event_name,
        "Lead"
    );
}

#[test]
fn a_missing_file_is_named() {
    let err = Mapping::load(std::path::Path::new("/nonexistent/mapping.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("/nonexistent/mapping.toml: cannot read"),
        "{err}"
    );
}

#[test]
fn related_records_need_to_be_asked_for() {
    let err = error_of(
        "[[rules]]\nname = \"a\"\ntrigger = \"contact.created\"\nevent_name = \"Lead\"\n[[rules.when]]\nfield = \"notes\"\nexists = true\n",
    );
    assert!(err.contains("needs = [\"notes\"]"), "{err}");
    let mapping = Mapping::parse(
        "[[rules]]\nname = \"a\"\ntrigger = \"contact.created\"\nevent_name = \"Lead\"\nneeds = [\"notes\"]\n[[rules.when]]\nfield = \"notes\"\ncontains = \"budget approved\"\n",
        "m.toml",
    )
    .expect("valid");
    let contact = enriched_contact("c1");
    let now = at("2026-11-21T00:00:00Z");
    let occ = Occurrence::for_contact(Trigger::ContactCreated, "loc", &contact, now);
    let mut related = Map::new();
    related.insert("notes".into(), json!([{"body": "Budget approved by CFO"}]));
    assert_eq!(mapping.map(&occ, &contact, &related, now).len(), 1);
    assert!(mapping.map(&occ, &contact, &Map::new(), now).is_empty());
}

#[test]
fn metrics_name_only_standard_and_mapped_events_so_callers_cannot_add_dimensions() {
    let m = fixtures::mapping_with(
        "\n[[rules]]\nname = \"q\"\ntrigger = \"contact.created\"\nevent_name = \"QualifiedLead\"\n",
    );
    assert_eq!(m.metric_name("Purchase"), "Purchase");
    assert_eq!(m.metric_name("QualifiedLead"), "QualifiedLead");
    // The posted rule's name comes from the caller's eventType.
    assert_eq!(m.metric_name("anything-a-caller-posts-7f3a"), "other");
}

/// A rule that does not fire says which of its conditions stopped it, by path and
/// test only: never the value it compared with.
#[test]
fn a_rule_that_does_not_fire_names_its_failed_condition() {
    let mapping = Mapping::parse(
        r#"
[[rules]]
name = "big-buyer"
trigger = "contact.created"
event_name = "Lead"
[[rules.when]]
field = "contact.email"
exists = true
[[rules.when]]
field = "contact.country"
equals = "FR"
"#,
        "test",
    )
    .expect("mapping");
    let contact = enriched_contact("c1");
    let now = "2026-11-21T10:00:00Z";
    let occ = Occurrence::for_contact(Trigger::ContactCreated, "loc", &contact, at(now));
    assert!(map(&mapping, &occ, &contact, now).is_empty());
    assert_eq!(
        mapping.unmet(&occ, &contact, &Map::new()),
        [Unmet {
            rule: "big-buyer",
            condition: "contact.country equals".into(),
            other_change: false,
        }]
    );
}

/// A tag rule stopped by the tag that changed watches other changes: its line is
/// detail (each tag a contact gets would log one for every tag rule); stopped by
/// the contact, it is news. Whatever order its conditions come in.
#[test]
fn a_rule_watching_another_tag_is_told_from_one_the_contact_stopped() {
    let mapping = Mapping::parse(
        r#"
[[rules]]
name = "vip-in-france"
trigger = "contact.tag_added"
event_name = "Lead"
[[rules.when]]
field = "contact.country"
equals = "FR"
[[rules.when]]
field = "trigger.tag"
one_of = ["vip"]
"#,
        "test",
    )
    .expect("mapping");
    let now = at("2026-11-21T10:00:00Z");
    let unmet = |tag: &str| {
        let mut created = webhook("constructed/ContactCreate.delivered.json");
        if let Webhook::ContactCreate(e) = &mut created {
            e.contact.tags = vec![tag.into()];
            e.contact.country = Some("US".into());
        }
        let (occurrences, _) = Occurrence::from_webhook(&created, None, now);
        let added = occurrences.iter().find(|o| o.trigger == Trigger::TagAdded);
        let unmet = mapping.unmet(
            added.expect("tag added"),
            &contact_of(&created),
            &Map::new(),
        );
        let unmet = unmet.iter().map(|u| (u.condition.clone(), u.other_change));
        unmet.collect::<Vec<_>>()
    };
    assert_eq!(unmet("lead"), [("trigger.tag one_of".to_owned(), true)]);
    assert_eq!(unmet("vip"), [("contact.country equals".to_owned(), false)]);
}
