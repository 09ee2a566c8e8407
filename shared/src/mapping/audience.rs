//! `[[audiences]]`: Meta Custom Audiences whose members follow GHL. A contact is a
//! member while it carries one of the audience's tags, or while its conditions
//! hold; what it joins and leaves is enrichment's to work out
//! ([`crate::enrich`]), from the row [`row`] makes of it.

use super::build::identity;
use super::{Condition, Subject, TokenRef};
use crate::capi::audience::Row;
use crate::ghl::Contact;
use crate::normalize::{Field, normalize, sha256_hex};

/// How long the pipeline remembers a membership (and its last applied change):
/// far beyond any audience's life at Meta (an unused one expires after two years).
pub const REMEMBERED_FOR: std::time::Duration = std::time::Duration::from_secs(3 * 366 * 24 * 3600);

/// A customer-list Custom Audience the mapping keeps in step.
#[derive(Debug, Clone, PartialEq)]
pub struct Audience {
    /// The mapping's name for it; part of its state keys, so it must stay stable.
    pub name: String,
    /// The audience's numeric id at Meta.
    pub audience_id: String,
    /// Where its token is kept (one with `ads_management` on its ad account).
    pub access_token: TokenRef,
    /// The GHL locations whose contacts it takes; empty means all.
    pub locations: Vec<String>,
    pub membership: Membership,
}

/// What makes a contact a member.
#[derive(Debug, Clone, PartialEq)]
pub enum Membership {
    /// Carrying any of these tags (compared as GHL does, ignoring case).
    Tags(Vec<String>),
    /// Every condition holding. `entity` is the trigger entity they read
    /// (`opportunity`, `appointment`), when they read one: only a change of that
    /// entity says whether they hold.
    Conditions {
        conditions: Vec<Condition>,
        entity: Option<&'static str>,
    },
}

impl Audience {
    /// Whether it takes contacts of `location_id`.
    pub fn serves(&self, location_id: &str) -> bool {
        self.locations.is_empty() || self.locations.iter().any(|l| l == location_id)
    }

    /// Whether the subject's contact belongs, as far as its occurrence tells;
    /// `None` when the occurrence says nothing about it (a condition on an
    /// opportunity, seen on a contact change).
    pub fn wants(&self, subject: &Subject<'_>) -> Option<bool> {
        match &self.membership {
            Membership::Tags(tags) => Some(tags.iter().any(|t| subject.contact.has_tag(t))),
            Membership::Conditions {
                entity: Some(entity),
                ..
            } if subject.occurrence.trigger.entity() != Some(entity) => None,
            Membership::Conditions { conditions, .. } => {
                Some(conditions.iter().all(|c| c.holds(subject)))
            }
        }
    }

    /// The tags it names (for a tag audience).
    pub fn tags(&self) -> &[String] {
        match &self.membership {
            Membership::Tags(tags) => tags,
            Membership::Conditions { .. } => &[],
        }
    }
}

/// `contact`'s row, each key normalised with the project's profile and hashed
/// (`EXTERN_ID` as the events' `external_id`, so both match the same string).
pub fn row(contact: &Contact) -> Row {
    let country = contact.country.as_deref();
    let mut values = vec![String::new(); crate::capi::audience::SCHEMA.len()];
    let mut set = |key: &str, value: String| {
        if let Some(i) = crate::capi::audience::SCHEMA.iter().position(|k| *k == key) {
            values[i] = value;
        }
    };
    if let Some(id) = normalize(Field::ExternalId, &contact.id, None) {
        set("EXTERN_ID", id.sha256().as_str().to_owned());
    }
    let gender = contact
        .field("gender")
        .and_then(|g| g.as_str().map(str::to_owned));
    let fields = identity(contact).chain(gender.as_deref().map(|g| (Field::Gender, g)));
    for (field, input) in fields {
        let Some(normal) = normalize(field, input, country) else {
            continue;
        };
        let hashed = || normal.sha256().as_str().to_owned();
        match field {
            Field::Email => set("EMAIL", hashed()),
            Field::Phone => set("PHONE", hashed()),
            Field::FirstName => set("FN", hashed()),
            Field::LastName => set("LN", hashed()),
            Field::City => set("CT", hashed()),
            Field::State => set("ST", hashed()),
            Field::Zip => set("ZIP", hashed()),
            Field::Country => set("COUNTRY", hashed()),
            Field::Gender => set("GEN", hashed()),
            // Normalised as YYYYMMDD; Meta wants its three parts, each hashed.
            Field::DateOfBirth if !normal.is_prehashed() && normal.as_str().len() == 8 => {
                let date = normal.as_str();
                set("DOBY", sha256_hex(&date[..4]).as_str().to_owned());
                set("DOBM", sha256_hex(&date[4..6]).as_str().to_owned());
                set("DOBD", sha256_hex(&date[6..]).as_str().to_owned());
            }
            Field::DateOfBirth | Field::ExternalId => {}
        }
    }
    Row(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(json: serde_json::Value) -> Contact {
        serde_json::from_value(json).expect("contact")
    }

    /// Meta's own examples (`reference/meta-capi.md` §5).
    #[test]
    fn rows_hash_as_metas_examples() {
        let row = row(&contact(serde_json::json!({
            "id": "c1", "email": "  Mary@Example.com ", "phone": "+1 (555) 987-6543",
            "firstName": "Mary", "lastName": "Smith", "dateOfBirth": "1990-04-07",
            "country": "US", "postalCode": "94025"
        })));
        assert_eq!(
            row.get("EMAIL"),
            "f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79"
        );
        assert_eq!(
            row.get("PHONE"),
            "1ef970831d7963307784fa8688e8fce101a15685d62aa765fed23f3a2c576a4e"
        );
        assert_eq!(row.get("DOBY"), sha256_hex("1990").as_str());
        assert_eq!(row.get("DOBM"), sha256_hex("04").as_str());
        assert_eq!(row.get("DOBD"), sha256_hex("07").as_str());
        assert_eq!(row.get("FN"), sha256_hex("mary").as_str());
        assert_eq!(row.get("COUNTRY"), sha256_hex("us").as_str());
        assert_eq!(row.get("EXTERN_ID"), sha256_hex("c1").as_str());
        assert_eq!(row.get("GEN"), "");
        assert!(row.is_usable());
    }

    #[test]
    fn a_contact_without_email_or_phone_has_no_usable_row() {
        let row = row(&contact(
            serde_json::json!({"id": "c2", "firstName": "Ann", "phone": "+0000000000"}),
        ));
        assert!(!row.is_usable());
        assert_eq!(row.get("PHONE"), "");
    }
}
