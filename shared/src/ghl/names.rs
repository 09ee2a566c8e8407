//! The names behind a location's ids, as GHL shows them to a person: its
//! pipelines and their stages, its custom fields and its calendars (read by
//! [`super::names_api`]). Sub-accounts cloned from one snapshot share
//! names under other ids: a rule written in names serves them all.

use serde::{Deserialize, Serialize};

/// Something GHL names: its id and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

/// A pipeline and its stages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pipeline {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// GHL's spec leaves a stage's shape open: those that read as named are kept.
    #[serde(default, deserialize_with = "named_only")]
    pub stages: Vec<Named>,
}

fn named_only<'de, D: serde::Deserializer<'de>>(input: D) -> Result<Vec<Named>, D::Error> {
    let items = Vec::<serde_json::Value>::deserialize(input)?;
    Ok(items
        .into_iter()
        .filter_map(|item| serde_json::from_value(item).ok())
        .collect())
}

/// A custom field: its id, the name a person sees, and its key
/// (`contact.how_can_we_help`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldName {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub field_key: String,
}

/// A location's names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationNames {
    #[serde(default)]
    pub pipelines: Vec<Pipeline>,
    #[serde(default)]
    pub custom_fields: Vec<FieldName>,
    #[serde(default)]
    pub calendars: Vec<Named>,
}

impl LocationNames {
    pub fn pipeline(&self, id: &str) -> Option<&Pipeline> {
        self.pipelines.iter().find(|p| p.id == id)
    }

    /// A stage's name, by its id, in any pipeline.
    pub fn stage(&self, id: &str) -> Option<&str> {
        self.pipelines
            .iter()
            .flat_map(|p| &p.stages)
            .find(|s| s.id == id)
            .map(|s| s.name.as_str())
    }

    pub fn calendar(&self, id: &str) -> Option<&str> {
        self.calendars
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.name.as_str())
    }

    /// A custom field's id by its name, its key, or its key without the
    /// `contact.` its object puts before it.
    pub fn custom_field(&self, name_or_key: &str) -> Option<&str> {
        let key = |f: &&FieldName| {
            f.field_key == name_or_key
                || f.field_key.split_once('.').map(|(_, k)| k) == Some(name_or_key)
        };
        let named = |f: &&FieldName| f.name == name_or_key;
        let fields = &self.custom_fields;
        fields
            .iter()
            .find(key)
            .or_else(|| fields.iter().find(named))
            .map(|f| f.id.as_str())
    }

    /// Names `contact`'s custom fields (their key and name), so a rule reads
    /// them by either.
    pub fn name_fields(&self, contact: &mut super::Contact) {
        for field in &mut contact.custom_fields {
            if let Some(named) = self.custom_fields.iter().find(|f| f.id == field.id) {
                field.key.get_or_insert_with(|| named.field_key.clone());
                field.name = Some(named.name.clone());
            }
        }
    }

    /// Whether every id of `ids` is known here (else the names may be stale).
    pub fn knows(&self, ids: &[&str]) -> bool {
        ids.iter().all(|id| {
            self.pipeline(id).is_some() || self.stage(id).is_some() || self.calendar(id).is_some()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_by_id_and_custom_fields_by_name_or_key() {
        let names: LocationNames = serde_json::from_value(serde_json::json!({
            "pipelines": [{"id": "p1", "name": "Sales", "stages": [
                {"id": "s1", "name": "New"}, {"id": "s2", "name": "Qualified"}]}],
            "customFields": [{"id": "f1", "name": "How can we help?", "fieldKey": "contact.how_can_we_help"}],
            "calendars": [{"id": "k1", "name": "Consultation"}]
        }))
        .expect("names");
        assert_eq!(names.stage("s2"), Some("Qualified"));
        assert_eq!(names.pipeline("p1").map(|p| p.name.as_str()), Some("Sales"));
        assert_eq!(names.calendar("k1"), Some("Consultation"));
        for way in [
            "How can we help?",
            "contact.how_can_we_help",
            "how_can_we_help",
        ] {
            assert_eq!(names.custom_field(way), Some("f1"), "{way}");
        }
        assert!(names.knows(&["p1", "s1", "k1"]) && !names.knows(&["s9"]));
    }
}
