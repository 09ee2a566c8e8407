//! Limited Data Use and marketing consent, as a rule (or `[defaults]`, or an
//! audience) declares them: which events carry Meta's `data_processing_options`,
//! and which contacts get no event at all.

use super::path::{Condition, Subject};

/// Meta's Limited Data Use for an event or an audience row.
#[derive(Debug, Clone, PartialEq)]
pub enum LimitedDataUse {
    /// Not asked for: nothing is sent (Meta reads no option, or an empty list, as
    /// no LDU).
    Off,
    /// `["LDU"]` with Meta's country and state codes; `0, 0` asks Meta to
    /// geolocate the event and apply LDU where the state's law does.
    On { country: u32, state: u32 },
    /// `["LDU"]` (Meta geolocates) for contacts the condition holds for (a consent
    /// or opt-out field), nothing for the others.
    When(Condition),
}

impl LimitedDataUse {
    /// What it sends, in words (`mapping check`); `None` when off.
    pub fn describe(&self) -> Option<String> {
        match self {
            LimitedDataUse::Off => None,
            LimitedDataUse::On {
                country: 0,
                state: 0,
            } => Some("LDU, Meta geolocates".into()),
            LimitedDataUse::On { country, state } => {
                Some(format!("LDU in country {country}, state {state}"))
            }
            LimitedDataUse::When(c) => Some(format!("LDU where {} holds", c.describe())),
        }
    }

    /// The options for `subject`'s event: `Some((country, state))` for LDU.
    pub fn options(&self, subject: &Subject<'_>) -> Option<(u32, u32)> {
        match self {
            LimitedDataUse::Off => None,
            LimitedDataUse::On { country, state } => Some((*country, *state)),
            LimitedDataUse::When(condition) => condition.holds(subject).then_some((0, 0)),
        }
    }
}

/// The marketing consent a rule needs before it sends anything for a contact.
#[derive(Debug, Clone, PartialEq)]
pub enum Consent {
    /// GHL's Do Not Disturb: a contact with DND on (`dnd`, every channel) gets
    /// no event.
    NotDnd,
    /// A contact gets events only when the condition holds (a consent field).
    When(Condition),
}

impl Consent {
    /// Whether `subject`'s contact gave it.
    pub fn given(&self, subject: &Subject<'_>) -> bool {
        match self {
            Consent::NotDnd => subject.contact.dnd != Some(true),
            Consent::When(condition) => condition.holds(subject),
        }
    }

    /// What it asks, in words (`mapping check`).
    pub fn describe(&self) -> String {
        match self {
            Consent::NotDnd => "consent: not Do Not Disturb".into(),
            Consent::When(c) => format!("consent: {}", c.describe()),
        }
    }

    /// Why a contact lacks it, in words for the audit line.
    pub fn lacking(&self) -> String {
        match self {
            Consent::NotDnd => "the contact has Do Not Disturb on in GHL".into(),
            Consent::When(condition) => {
                format!(
                    "no marketing consent ({} does not hold)",
                    condition.describe()
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use serde_json::{Map, json};

    use crate::ghl::Contact;
    use crate::mapping::{Mapping, Occurrence};

    const PIXEL: &str =
        "[[pixels]]\nname = \"main\"\ndataset_id = \"1\"\naccess_token = { env = \"T\" }\n";

    fn mapping(text: &str) -> Result<Mapping, String> {
        Mapping::parse(&format!("{PIXEL}{text}"), "m.toml").map_err(|e| e.to_string())
    }

    fn rule(extra: &str) -> String {
        format!(
            "[[rules]]\nname = \"lead\"\ntrigger = \"contact.updated\"\nevent_name = \"Lead\"\n{extra}"
        )
    }

    fn contact(fields: serde_json::Value) -> Contact {
        let mut base = json!({"id": "c1", "email": "ann@example.com"});
        base.as_object_mut()
            .expect("object")
            .extend(fields.as_object().cloned().unwrap_or_default());
        serde_json::from_value(base).expect("contact")
    }

    /// The events `mapping` sends for `contact` changing.
    fn sent(mapping: &Mapping, contact: &Contact) -> Vec<serde_json::Value> {
        let now: DateTime<Utc> = "2026-12-06T12:00:00Z".parse().expect("time");
        let occ = Occurrence::listed("loc1", &contact.id, now);
        mapping
            .map(&occ, contact, &Map::new(), now)
            .into_iter()
            .filter_map(|e| e.outcome.ok())
            .map(|e| serde_json::to_value(e).expect("json"))
            .collect()
    }

    #[test]
    fn limited_data_use_is_constant_geolocated_or_by_a_contact_field_and_a_rule_overrides_the_default()
     {
        let geolocated = mapping(&format!(
            "[defaults]\nlimited_data_use = true\n{}",
            rule("")
        ))
        .expect("loads");
        let event = &sent(&geolocated, &contact(json!({})))[0];
        assert_eq!(event["data_processing_options"], json!(["LDU"]));
        assert_eq!(
            (
                event["data_processing_options_country"].clone(),
                event["data_processing_options_state"].clone()
            ),
            (json!(0), json!(0))
        );
        let fixed =
            mapping(&rule("limited_data_use = { country = 1, state = 1000 }\n")).expect("loads");
        let event = &sent(&fixed, &contact(json!({})))[0];
        assert_eq!(event["data_processing_options_state"], json!(1000));
        let off = mapping(&format!(
            "[defaults]\nlimited_data_use = true\n{}",
            rule("limited_data_use = false\n")
        ))
        .expect("loads");
        let event = &sent(&off, &contact(json!({})))[0];
        assert!(event.get("data_processing_options").is_none(), "{event}");
        let by_field = mapping(&rule(
            "limited_data_use = { field = \"contact.state\", one_of = [\"CA\", \"California\"] }\n",
        ))
        .expect("loads");
        let californian = &sent(&by_field, &contact(json!({"state": "CA"})))[0];
        assert_eq!(californian["data_processing_options"], json!(["LDU"]));
        let texan = &sent(&by_field, &contact(json!({"state": "TX"})))[0];
        assert!(texan.get("data_processing_options").is_none(), "{texan}");
    }

    #[test]
    fn consent_drops_the_rules_events_for_a_contact_without_it_and_says_why() {
        let dnd = mapping(&format!("[defaults]\nconsent = \"dnd\"\n{}", rule(""))).expect("loads");
        let now: DateTime<Utc> = "2026-12-06T12:00:00Z".parse().expect("time");
        let quiet = contact(json!({"dnd": true}));
        assert!(
            sent(&dnd, &quiet).is_empty(),
            "Do Not Disturb: nothing sent"
        );
        assert_eq!(sent(&dnd, &contact(json!({"dnd": false}))).len(), 1);
        assert_eq!(
            sent(&dnd, &contact(json!({}))).len(),
            1,
            "no DND said: consent stands"
        );
        let occ = Occurrence::listed("loc1", "c1", now);
        let refused = dnd.without_consent(&occ, &quiet, &Map::new());
        assert_eq!(
            refused,
            [(
                "lead",
                "the contact has Do Not Disturb on in GHL".to_owned()
            )]
        );
        assert!(
            dnd.unmet(&occ, &quiet, &Map::new()).is_empty(),
            "its conditions held"
        );

        let field = mapping(&format!(
            "[custom_fields]\nmarketing = \"cf1\"\n[defaults]\nconsent = \"dnd\"\n{}",
            rule("consent = { field = \"custom.marketing\", one_of = [\"yes\"] }\n")
        ))
        .expect("loads");
        let agreed = contact(json!({"dnd": true, "customFields": [{"id": "cf1", "value": "Yes"}]}));
        assert_eq!(
            sent(&field, &agreed).len(),
            1,
            "the rule's own consent replaces the default"
        );
        let silent = contact(json!({}));
        let refused = field.without_consent(&occ, &silent, &Map::new());
        assert!(
            refused[0]
                .1
                .starts_with("no marketing consent (custom.cf1 one_of"),
            "{refused:?}"
        );
        let none = mapping(&format!(
            "[defaults]\nconsent = \"dnd\"\n{}",
            rule("consent = false\n")
        ))
        .expect("loads");
        assert_eq!(sent(&none, &quiet).len(), 1, "consent = false asks none");
    }

    #[test]
    fn malformed_settings_are_refused_at_their_line() {
        for (extra, problem) in [
            (
                "limited_data_use = \"yes\"\n",
                "limited_data_use is true, false",
            ),
            (
                "limited_data_use = { country = 1 }\n",
                "state must be one of Meta's codes",
            ),
            (
                "limited_data_use = { country = -1, state = 0 }\n",
                "country must be one of Meta's codes",
            ),
            (
                "limited_data_use = { field = \"opportunity.status\", equals = \"won\" }\n",
                "unknown field path",
            ),
            ("consent = \"maybe\"\n", "consent is \"dnd\""),
            ("consent = { field = \"contact.dnd\" }\n", "needs one test"),
        ] {
            let err = mapping(&rule(extra)).expect_err(extra);
            assert!(
                err.contains(problem) && err.contains("m.toml:"),
                "{extra}: {err}"
            );
        }
    }
}
