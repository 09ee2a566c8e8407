//! One rule of the mapping, and what it reads.

use serde_json::Value;

use super::path::{Condition, FieldPath, Test};
use super::{Need, Occurrence, Source, Trigger, occurrence, privacy};
use crate::capi::ActionSource;
use crate::ghl::Contact;
use crate::ghl::workflow::REFS;

/// One rule: when `trigger` happens and every condition holds, send `event_name`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub trigger: Trigger,
    pub event_name: Source,
    pub action_source: Option<ActionSource>,
    pub value: Option<Source>,
    pub currency: Option<Source>,
    pub lead_id: Option<Source>,
    pub external_id: Option<Source>,
    /// Extra `custom_data` keys (standard ones such as `content_name` included).
    pub custom_data: Vec<(String, Source)>,
    pub needs: Vec<Need>,
    /// The pixels it feeds, by name; empty means every pixel of the location.
    pub pixels: Vec<String>,
    pub conditions: Vec<Condition>,
    /// Its events' Limited Data Use (its own, else `[defaults]`').
    pub limited_data_use: privacy::LimitedDataUse,
    /// The marketing consent a contact must have for it to send anything (its
    /// own, else `[defaults]`').
    pub consent: Option<privacy::Consent>,
    /// What it writes back into GHL about its events (`[rules.write_back]`).
    pub write_back: Option<crate::jobs::WriteBack>,
}

impl Rule {
    /// The workflows its `workflow = …` names (for `workflow.fired` rules).
    pub fn named_workflows(&self) -> impl Iterator<Item = &str> {
        self.named(REFS)
    }

    /// What its shorthand on the entity's `field` (`workflow`, `stage`, …)
    /// accepts.
    pub(crate) fn named<'r>(&'r self, field: &'r str) -> impl Iterator<Item = &'r str> {
        self.conditions
            .iter()
            .filter(move |c| {
                matches!(&c.path, Some(FieldPath::Entity(keys)) if keys.len() == 1 && keys[0] == field)
            })
            .filter_map(|c| match &c.test {
                Test::OneOf(values) => Some(values),
                _ => None,
            })
            .flatten()
            .filter_map(Value::as_str)
    }

    /// The paths into the trigger's entity it reads, in its values and conditions.
    pub fn entity_paths(&self) -> Vec<&[String]> {
        self.paths()
            .filter_map(|path| match path {
                FieldPath::Entity(keys) => Some(keys.as_slice()),
                _ => None,
            })
            .collect()
    }

    /// Whether it may read what only the location's names resolve: a stage,
    /// pipeline or calendar named, or a custom field (by name or key).
    pub fn reads_names(&self) -> bool {
        // A field written back by key is written by the id the names give it.
        let writes_keyed = (self.write_back.iter().flat_map(|w| &w.fields))
            .any(|(_, field)| crate::ghl::contacts_api::CustomFieldInput::is_key(field));
        let named = [
            occurrence::STAGE_REFS,
            occurrence::PIPELINE_REFS,
            occurrence::CALENDAR_REFS,
        ];
        writes_keyed
            || self.paths().any(|path| match path {
                FieldPath::Custom(_) => true,
                FieldPath::Entity(keys) => {
                    keys.first().is_some_and(|k| named.contains(&k.as_str()))
                }
                _ => false,
            })
    }

    /// Whether it needs the location's names for `occ` and `contact`: it names a
    /// stage, pipeline or calendar the change gives by id alone, or reads a custom
    /// field the contact does not carry under that id, key or name.
    pub fn wants_names(&self, occ: &Occurrence, contact: &Contact) -> bool {
        self.reads_names()
            && self.paths().any(|path| match path {
                FieldPath::Custom(key) => contact.custom_field(key).is_none(),
                FieldPath::Entity(keys) => keys.first().is_some_and(|k| occ.unnamed(k)),
                _ => false,
            })
    }

    /// Every path it reads, in its values and conditions.
    pub(crate) fn paths(&self) -> impl Iterator<Item = &FieldPath> {
        let sources = [
            Some(&self.event_name),
            self.value.as_ref(),
            self.currency.as_ref(),
            self.lead_id.as_ref(),
            self.external_id.as_ref(),
        ]
        .into_iter()
        .flatten()
        .chain(self.custom_data.iter().map(|(_, source)| source));
        let from_sources = sources.filter_map(|source| match source {
            Source::Field { path, .. } => Some(path),
            Source::Constant(_) => None,
        });
        let privacy = [
            match &self.limited_data_use {
                privacy::LimitedDataUse::When(c) => Some(c),
                _ => None,
            },
            match &self.consent {
                Some(privacy::Consent::When(c)) => Some(c),
                _ => None,
            },
        ];
        let from_conditions = (self.conditions.iter().chain(privacy.into_iter().flatten()))
            .filter_map(|c| c.path.as_ref());
        from_sources.chain(from_conditions)
    }
}
