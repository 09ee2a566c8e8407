//! `[[audiences]]`: Meta Custom Audiences whose members follow GHL. A contact is a
//! member while it carries one of the audience's tags, or while its conditions
//! hold; what it joins and leaves is enrichment's to work out
//! ([`crate::enrich`]), from the row [`row`] makes of it.

use super::build::identity;
use chrono::{DateTime, Utc};
use serde_json::Map;

use super::privacy::{Consent, LimitedDataUse};
use super::{Condition, Occurrence, Subject, TokenRef};
use crate::capi::audience::{Row, SCHEMA};
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
    /// How often its whole list is replaced with GHL's members, on the
    /// reconciliation's schedule (`mirror_every`); `None`: never by itself.
    pub mirror_every: Option<std::time::Duration>,
    /// Its rows' Limited Data Use (its own, else `[defaults]`'); rows of an
    /// audience that asks for it carry the LDU columns.
    pub limited_data_use: LimitedDataUse,
    /// The marketing consent a member must have (its own, else `[defaults]`'): a
    /// contact without it is no member, and leaves when it withdraws it.
    pub consent: Option<Consent>,
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
        self.locations.is_empty() || self.names(location_id)
    }

    /// Whether it names `location_id` among its locations (rather than taking it
    /// as one of "all locations").
    pub fn names(&self, location_id: &str) -> bool {
        self.locations.iter().any(|l| l == location_id)
    }

    /// Whether the subject's contact belongs, as far as its occurrence tells;
    /// `None` when the occurrence says nothing about it (a condition on an
    /// opportunity, seen on a contact change).
    pub fn wants(&self, subject: &Subject<'_>) -> Option<bool> {
        let consents = || self.consent.as_ref().is_none_or(|c| c.given(subject));
        let member = match &self.membership {
            Membership::Tags(tags) => Some(tags.iter().any(|t| subject.contact.has_tag(t))),
            Membership::Conditions {
                entity: Some(entity),
                ..
            } if subject.occurrence.trigger.entity() != Some(entity) => None,
            Membership::Conditions { conditions, .. } => {
                Some(conditions.iter().all(|c| c.holds(subject)))
            }
        };
        member.map(|member| member && consents())
    }

    /// The trigger entity its conditions read, if they read one.
    pub fn entity(&self) -> Option<&'static str> {
        match &self.membership {
            Membership::Conditions { entity, .. } => *entity,
            Membership::Tags(_) => None,
        }
    }

    /// Whether `contact` belongs, as a job's `occurrences` tell (at `at`, in
    /// `location_id`); `None` when they say nothing about it.
    pub fn judge(
        &self,
        contact: &Contact,
        occurrences: &[Occurrence],
        location_id: &str,
        at: DateTime<Utc>,
    ) -> Option<bool> {
        let entity = self.entity();
        let found = occurrences
            .iter()
            .find(|occ| entity.is_none() || occ.trigger.entity() == entity);
        let listed;
        let occurrence = match (found, entity) {
            (Some(occ), _) => occ,
            (None, Some(_)) => return None,
            // A first sight makes no occurrence; the contact alone is read.
            (None, None) => {
                listed = Occurrence::listed(location_id, &contact.id, at);
                &listed
            }
        };
        let related = Map::new();
        self.wants(&Subject::new(contact, occurrence, &related))
    }

    /// `contact`'s row for it: [`row`], with the Limited Data Use columns when it
    /// asks for LDU (judged by the contact's own fields).
    pub fn row(&self, contact: &Contact) -> Row {
        let plain = row(contact);
        if self.limited_data_use == LimitedDataUse::Off {
            return plain;
        }
        // Its condition reads contact fields only (checked at load): the
        // occurrence is a stand-in.
        let occurrence = Occurrence::listed("", &contact.id, DateTime::<Utc>::UNIX_EPOCH);
        let related = Map::new();
        let subject = Subject::new(contact, &occurrence, &related);
        plain.with_ldu(self.limited_data_use.options(&subject))
    }

    /// The tags it names (for a tag audience).
    pub fn tags(&self) -> &[String] {
        match &self.membership {
            Membership::Tags(tags) => tags,
            Membership::Conditions { .. } => &[],
        }
    }
}

/// One key of a contact's row: what GHL holds, what it normalises to, and what
/// Meta receives (`mapping preview` shows all three).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowKey {
    /// Its [`SCHEMA`] name.
    pub key: &'static str,
    pub input: String,
    pub normalized: Option<String>,
    /// Its SHA-256, or `""` when it normalises to nothing.
    pub value: String,
}

/// Each key of `contact`'s row it has a value for, normalised with the project's
/// profile and hashed (`EXTERN_ID` as the events' `external_id`, so both match the
/// same string; a date of birth as Meta's three keys).
pub fn row_keys(contact: &Contact) -> Vec<RowKey> {
    let country = contact.country.as_deref();
    let gender = contact
        .field("gender")
        .and_then(|g| g.as_str().map(str::to_owned));
    let fields = std::iter::once((Field::ExternalId, contact.id.as_str()))
        .chain(identity(contact))
        .chain(gender.as_deref().map(|g| (Field::Gender, g)));
    let mut keys = Vec::new();
    for (field, input) in fields {
        let normal = normalize(field, input, country);
        let key = |key, normalized: Option<&str>, value: String| RowKey {
            key,
            input: input.to_owned(),
            normalized: normalized.map(str::to_owned),
            value,
        };
        let hashed = || {
            normal
                .as_ref()
                .map_or(String::new(), |n| n.sha256().as_str().to_owned())
        };
        let plain = normal.as_ref().map(|n| n.as_str());
        let name = match field {
            Field::ExternalId => "EXTERN_ID",
            Field::Email => "EMAIL",
            Field::Phone => "PHONE",
            Field::FirstName => "FN",
            Field::LastName => "LN",
            Field::City => "CT",
            Field::State => "ST",
            Field::Zip => "ZIP",
            Field::Country => "COUNTRY",
            Field::Gender => "GEN",
            // Normalised as YYYYMMDD; Meta wants its three parts, each hashed.
            Field::DateOfBirth => {
                let date = normal
                    .as_ref()
                    .filter(|n| !n.is_prehashed() && n.as_str().len() == 8);
                for (name, part) in [("DOBY", 0..4), ("DOBM", 4..6), ("DOBD", 6..8)] {
                    let part = date.map(|d| &d.as_str()[part]);
                    keys.push(key(
                        name,
                        part,
                        part.map_or(String::new(), |p| sha256_hex(p).as_str().to_owned()),
                    ));
                }
                continue;
            }
        };
        keys.push(key(name, plain, hashed()));
    }
    keys
}

/// `contact`'s row: [`row_keys`] in [`SCHEMA`] order, `""` for the keys it lacks.
pub fn row(contact: &Contact) -> Row {
    let mut values = vec![String::new(); SCHEMA.len()];
    for key in row_keys(contact) {
        if let Some(i) = SCHEMA.iter().position(|k| *k == key.key) {
            values[i] = key.value;
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
