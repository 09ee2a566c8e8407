//! The contact record, as `GET /contacts/{id}` returns it and contact webhooks carry
//! it (flat). Every documented field is typed; anything else is kept in `extra`, so
//! custom data and attribution GHL adds later still reach the mapping.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::de::deserialize_keeping_extra;
use serde_json::{Map, Value};

/// A GHL contact. Timestamps stay ISO-8601 text as GHL sends them; see
/// [`Contact::date_added`] for the parsed form.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_of_birth: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "type")]
    pub contact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnd: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_fields: Vec<CustomField>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_added: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_updated: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution_source: Option<AttributionSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attribution_source: Option<AttributionSource>,
    /// Fields GHL sends that are not typed above (`dndSettings`, `attachments`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One custom field value. GHL sends `{id, value}`; `value` may be text, a number,
/// a list or an object depending on the field's type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomField {
    pub id: String,
    /// The field's key (`contact.order_value`), when the payload carries it.
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "fieldKey")]
    pub key: Option<String>,
    /// The name a person sees (`How can we help?`), when the location's names
    /// were read ([`super::names::LocationNames::name_fields`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, alias = "field_value")]
    pub value: Value,
}

/// Where the contact came from: click ids and browser data for Meta matching.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributionSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fbclid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fbc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fbp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fb_event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    /// `utmSource`, `campaign`, `medium`, `sessionSource` and the rest.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

deserialize_keeping_extra!(Contact, required { "id" => id }, {
    "locationId" => location_id,
    "name" => name,
    "firstName" => first_name,
    "lastName" => last_name,
    "email" => email,
    "phone" => phone,
    "companyName" => company_name,
    "address1" => address1,
    "city" => city,
    "state" => state,
    "postalCode" => postal_code,
    "country" => country,
    "website" => website,
    "timezone" => timezone,
    "dateOfBirth" => date_of_birth,
    "source" => source,
    "type" => contact_type,
    "assignedTo" => assigned_to,
    "dnd" => dnd,
    "tags" => tags,
    "customFields" => custom_fields,
    "dateAdded" => date_added,
    "dateUpdated" => date_updated,
    "attributionSource" => attribution_source,
    "lastAttributionSource" => last_attribution_source,
});

deserialize_keeping_extra!(AttributionSource, required {}, {
    "url" => url,
    "fbclid" => fbclid,
    "fbc" => fbc,
    "fbp" => fbp,
    "fbEventId" => fb_event_id,
    "ip" => ip,
    "userAgent" => user_agent,
    "referrer" => referrer,
});

/// An ISO-8601 timestamp as GHL writes it, parsed.
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl Contact {
    /// What a person edits in the contact, as a 16-hex digest: its standard
    /// fields and tags (ignoring case), not its custom fields, times or
    /// attribution. A webhook of a change that left it alike changed only what
    /// it leaves out (such as the custom fields a write-back sets).
    pub fn shape(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut digest = Sha256::new();
        let fields = [
            &self.name,
            &self.first_name,
            &self.last_name,
            &self.email,
            &self.phone,
            &self.company_name,
            &self.address1,
            &self.city,
            &self.state,
            &self.postal_code,
            &self.country,
            &self.website,
            &self.date_of_birth,
            &self.source,
            &self.assigned_to,
        ];
        for field in fields {
            digest.update(field.as_deref().unwrap_or_default().trim().to_lowercase());
            digest.update([0x1f]);
        }
        digest.update([u8::from(self.dnd.unwrap_or_default())]);
        let mut tags: Vec<String> = self.tags.iter().map(|t| t.trim().to_lowercase()).collect();
        tags.sort_unstable();
        tags.dedup();
        for tag in tags {
            digest.update(tag);
            digest.update([0x1e]);
        }
        hex::encode(&digest.finalize()[..8])
    }

    /// When the contact was created.
    pub fn date_added(&self) -> Option<DateTime<Utc>> {
        self.date_added.as_deref().and_then(parse_timestamp)
    }

    /// When the contact last changed.
    pub fn date_updated(&self) -> Option<DateTime<Utc>> {
        self.date_updated.as_deref().and_then(parse_timestamp)
    }

    /// Whether the contact carries `tag` (GHL tags compare case-insensitively).
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t.eq_ignore_ascii_case(tag))
    }

    /// A custom field's value by its id or its key.
    pub fn custom_field(&self, id_or_key: &str) -> Option<&Value> {
        self.custom_fields
            .iter()
            .find(|f| {
                let key = f.key.as_deref();
                f.id == id_or_key
                    || key == Some(id_or_key)
                    // `contact.how_can_we_help` read as `how_can_we_help`.
                    || key.and_then(|k| k.split_once('.')).map(|(_, k)| k) == Some(id_or_key)
                    || f.name.as_deref() == Some(id_or_key)
            })
            .map(|f| &f.value)
    }

    /// Any top-level field by its GHL (camelCase) name, typed or not, as JSON.
    pub fn field(&self, name: &str) -> Option<Value> {
        let text = |v: &Option<String>| v.clone().map(Value::String);
        match name {
            "id" => Some(Value::String(self.id.clone())),
            "locationId" => text(&self.location_id),
            "name" => text(&self.name),
            "firstName" => text(&self.first_name),
            "lastName" => text(&self.last_name),
            "email" => text(&self.email),
            "phone" => text(&self.phone),
            "companyName" => text(&self.company_name),
            "address1" => text(&self.address1),
            "city" => text(&self.city),
            "state" => text(&self.state),
            "postalCode" => text(&self.postal_code),
            "country" => text(&self.country),
            "website" => text(&self.website),
            "timezone" => text(&self.timezone),
            "dateOfBirth" => text(&self.date_of_birth),
            "source" => text(&self.source),
            "type" => text(&self.contact_type),
            "assignedTo" => text(&self.assigned_to),
            "dnd" => self.dnd.map(Value::Bool),
            "tags" => Some(Value::from(self.tags.clone())),
            "dateAdded" => text(&self.date_added),
            "dateUpdated" => text(&self.date_updated),
            other => self.extra.get(other).cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_kept_and_nulls_mean_empty() {
        let contact: Contact = serde_json::from_str(
            r#"{"id":"c1","tags":null,"customFields":null,"email":null,"ssn":"x",
                "attributionSource":{"fbclid":"IwAR1","utmSource":"fb"}}"#,
        )
        .expect("parses");
        assert!(contact.tags.is_empty() && contact.custom_fields.is_empty());
        assert_eq!(contact.email, None);
        assert_eq!(contact.extra["ssn"], "x");
        let attribution = contact.attribution_source.as_ref().expect("attribution");
        assert_eq!(attribution.fbclid.as_deref(), Some("IwAR1"));
        assert_eq!(attribution.extra["utmSource"], "fb");
        assert_eq!(contact.field("ssn"), Some("x".into()));
    }

    #[test]
    fn a_contact_needs_its_id_and_well_typed_fields() {
        let missing = serde_json::from_str::<Contact>(r#"{"email":"a@b.co"}"#).unwrap_err();
        assert!(
            missing.to_string().contains("missing field `id`"),
            "{missing}"
        );
        let wrong = serde_json::from_str::<Contact>(r#"{"id":"c","tags":"vip"}"#).unwrap_err();
        assert!(wrong.to_string().contains("invalid type"), "{wrong}");
    }

    #[test]
    fn serialising_keeps_ghl_names_and_extra_fields() {
        let contact: Contact =
            serde_json::from_str(r#"{"id":"c1","firstName":"Ann","visitorId":"v"}"#)
                .expect("parses");
        let json = serde_json::to_value(&contact).expect("serialises");
        assert_eq!(
            json,
            serde_json::json!({"id":"c1","firstName":"Ann","visitorId":"v"})
        );
    }

    #[test]
    fn parsing_into_a_used_contact_equals_a_fresh_parse() {
        let full = r#"{"id":"c1","locationId":"l1","firstName":"Ann","lastName":"Lee",
            "email":"ann@example.com","phone":"+1 512 555 0100","country":"US","dnd":true,
            "tags":["vip","lead","webinar"],"customFields":[{"id":"f1","value":3}],
            "dateAdded":"2026-11-20T10:00:00Z","ssn":"x",
            "attributionSource":{"fbclid":"IwAR1","ip":"203.0.113.9","utmSource":"fb"},
            "lastAttributionSource":{"fbp":"fb.1.2.3"}}"#;
        let sparse = r#"{"id":"c2","firstName":"Bo","tags":["x"],"email":null,
            "customFields":null,"attributionSource":{"url":"https://e.co"}}"#;
        let fresh = |text: &str| serde_json::from_str::<Contact>(text).expect("parses");
        let sonic_into = |text: &str, place: &mut Contact| {
            let mut parser = sonic_rs::Deserializer::from_str(text);
            Contact::deserialize_in_place(&mut parser, place).and_then(|()| parser.end())
        };
        for (first, second) in [(full, sparse), (sparse, full), (full, full)] {
            let mut place = fresh(first);
            let mut parser = serde_json::Deserializer::from_str(second);
            Contact::deserialize_in_place(&mut parser, &mut place).expect("parses");
            assert_eq!(place, fresh(second));

            let mut place = fresh(first);
            sonic_into(second, &mut place).expect("parses");
            assert_eq!(place, fresh(second));
        }

        // A record that fails half-way leaves nothing behind for the next one.
        let mut place = fresh(full);
        assert!(sonic_into(r#"{"id":"c3","firstName":"Cy","tags":"vip"}"#, &mut place).is_err());
        assert!(sonic_into(r#"{"email":"a@b.co"}"#, &mut place).is_err());
        sonic_into(sparse, &mut place).expect("parses");
        assert_eq!(place, fresh(sparse));
    }
}
