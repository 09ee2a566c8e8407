//! The identifier coverage score: 0–10 from the customer-information keys an event
//! carries. Meta scores match quality for web events only; CRM (`system_generated`)
//! and Conversion Leads events get none (`reference/meta-capi.md` §5.2), so this is
//! the one measure an agency has of whether its CRM events can find their people.
//!
//! The weights follow Meta's own guidance, and add up to 10: the Conversion Leads
//! priority (the Lead Ads `lead_id` first, then a click id or e-mail, then phone),
//! then the keys Meta documents as strongest after those (external id), then name,
//! place, birth date, and what a CRM event rarely has (gender, browser id, IP and
//! user agent). `docs/mapping.md` ("Identifier coverage score") prints the table
//! with its sources.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::UserData;
use crate::normalize::Field;

/// A key the score weighs. Click ids are one key: `fbc` or WhatsApp's `ctwa_clid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    LeadId,
    ClickId,
    Email,
    Phone,
    ExternalId,
    FirstName,
    LastName,
    Zip,
    City,
    State,
    Country,
    DateOfBirth,
    Gender,
    BrowserId,
    IpAddress,
    UserAgent,
}

/// Every key with its weight in hundredths of a point, strongest first. They add
/// up to 1,000: an event carrying every key scores 10.
pub const WEIGHTS: [(Key, u16); 16] = [
    (Key::LeadId, 250),
    (Key::ClickId, 200),
    (Key::Email, 200),
    (Key::Phone, 150),
    (Key::ExternalId, 70),
    (Key::FirstName, 25),
    (Key::LastName, 25),
    (Key::Zip, 20),
    (Key::City, 10),
    (Key::State, 10),
    (Key::Country, 10),
    (Key::DateOfBirth, 10),
    (Key::Gender, 5),
    (Key::BrowserId, 5),
    (Key::IpAddress, 5),
    (Key::UserAgent, 5),
];

impl Key {
    /// The key's weight, in hundredths of a point.
    pub fn weight(self) -> u16 {
        WEIGHTS[self as usize].1
    }

    /// Its `user_data` name (`lead_id`, `fbc`, `em`, …): what counters and audit
    /// lines call it.
    pub fn wire(self) -> &'static str {
        match self {
            Key::LeadId => "lead_id",
            Key::ClickId => "fbc",
            Key::Email => "em",
            Key::Phone => "ph",
            Key::ExternalId => "external_id",
            Key::FirstName => "fn",
            Key::LastName => "ln",
            Key::Zip => "zp",
            Key::City => "ct",
            Key::State => "st",
            Key::Country => "country",
            Key::DateOfBirth => "db",
            Key::Gender => "ge",
            Key::BrowserId => "fbp",
            Key::IpAddress => "client_ip_address",
            Key::UserAgent => "client_user_agent",
        }
    }

    /// Its name for a person (`lead id`, `click id`, `e-mail`, …).
    pub fn name(self) -> &'static str {
        match self {
            Key::LeadId => "lead id",
            Key::ClickId => "click id",
            Key::Email => "e-mail",
            Key::Phone => "phone",
            Key::ExternalId => "external id",
            Key::FirstName => "first name",
            Key::LastName => "last name",
            Key::Zip => "postcode",
            Key::City => "city",
            Key::State => "state",
            Key::Country => "country",
            Key::DateOfBirth => "birth date",
            Key::Gender => "gender",
            Key::BrowserId => "browser id",
            Key::IpAddress => "IP address",
            Key::UserAgent => "user agent",
        }
    }

    /// The key of a wire name (as [`Key::wire`] gives it; `ctwa_clid` is a click id).
    pub fn of_wire(name: &str) -> Option<Key> {
        if name == "ctwa_clid" {
            return Some(Key::ClickId);
        }
        WEIGHTS.iter().map(|(k, _)| *k).find(|k| k.wire() == name)
    }

    fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// Which scored keys an event carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage(u16);

impl Coverage {
    /// What `user` carries.
    pub fn of(user: &UserData) -> Coverage {
        let hashed = [
            (Key::Email, Field::Email),
            (Key::Phone, Field::Phone),
            (Key::ExternalId, Field::ExternalId),
            (Key::FirstName, Field::FirstName),
            (Key::LastName, Field::LastName),
            (Key::Zip, Field::Zip),
            (Key::City, Field::City),
            (Key::State, Field::State),
            (Key::Country, Field::Country),
            (Key::DateOfBirth, Field::DateOfBirth),
            (Key::Gender, Field::Gender),
        ];
        let plain = [
            (Key::LeadId, user.lead_id.is_some()),
            (Key::ClickId, user.fbc.is_some() || user.ctwa_clid.is_some()),
            (Key::BrowserId, user.fbp.is_some()),
            (Key::IpAddress, user.client_ip_address.is_some()),
            (Key::UserAgent, user.client_user_agent.is_some()),
        ];
        hashed
            .into_iter()
            .map(|(key, field)| (key, !user.hashes(field).is_empty()))
            .chain(plain)
            .filter(|(_, has)| *has)
            .fold(Coverage::default(), |c, (key, _)| c.with(key))
    }

    #[must_use]
    pub fn with(self, key: Key) -> Coverage {
        Coverage(self.0 | key.bit())
    }

    pub fn has(self, key: Key) -> bool {
        self.0 & key.bit() != 0
    }

    /// The keys it carries, strongest first.
    pub fn keys(self) -> impl Iterator<Item = Key> {
        WEIGHTS
            .into_iter()
            .map(|(k, _)| k)
            .filter(move |k| self.has(*k))
    }

    /// The keys it lacks, strongest first.
    pub fn lacking(self) -> impl Iterator<Item = Key> {
        WEIGHTS
            .into_iter()
            .map(|(k, _)| k)
            .filter(move |k| !self.has(*k))
    }

    pub fn score(self) -> Score {
        Score(self.keys().map(Key::weight).sum())
    }
}

/// A score from 0 to 10, kept in hundredths of a point so sums stay exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Score(pub u16);

impl Score {
    pub fn hundredths(self) -> u16 {
        self.0
    }

    /// The average of `total` hundredths over `events`, as a score (0 for none).
    pub fn average(total: u64, events: u64) -> Score {
        match events {
            0 => Score(0),
            n => Score(u16::try_from((total + n / 2) / n).unwrap_or(u16::MAX)),
        }
    }
}

/// One decimal, as a person reads it: `7.7`.
impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tenths = (u32::from(self.0) + 5) / 10;
        write!(f, "{}.{}", tenths / 10, tenths % 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(fields: &[(Field, &str)]) -> UserData {
        let mut user = UserData::default();
        for (field, value) in fields {
            assert!(user.add(*field, value, None), "{value} kept");
        }
        user
    }

    #[test]
    fn the_weights_are_in_order_of_strength_and_add_up_to_ten() {
        assert_eq!(
            WEIGHTS.iter().map(|(_, w)| u32::from(*w)).sum::<u32>(),
            1000
        );
        assert!(WEIGHTS.windows(2).all(|w| w[0].1 >= w[1].1));
        for (i, (key, weight)) in WEIGHTS.iter().enumerate() {
            assert_eq!(*key as usize, i, "{key:?} sits at its own index");
            assert_eq!(key.weight(), *weight);
            assert_eq!(Key::of_wire(key.wire()), Some(*key));
        }
        // Meta's Conversion Leads priority: lead id, then click id ≈ e-mail, then
        // phone, then the rest.
        assert!(Key::LeadId.weight() > Key::ClickId.weight());
        assert_eq!(Key::ClickId.weight(), Key::Email.weight());
        assert!(Key::Email.weight() > Key::Phone.weight());
        assert!(Key::Phone.weight() > Key::ExternalId.weight());
        assert!(Key::ExternalId.weight() > Key::FirstName.weight() + Key::LastName.weight());
    }

    #[test]
    fn an_event_scores_what_it_carries() {
        assert_eq!(Coverage::of(&UserData::default()).score(), Score(0));
        let form = user(&[
            (Field::Email, "jane@example.com"),
            (Field::Phone, "+1 650 555 1212"),
            (Field::FirstName, "Jane"),
            (Field::LastName, "Doe"),
        ]);
        let coverage = Coverage::of(&form);
        assert_eq!(coverage.score().to_string(), "4.0");
        assert_eq!(coverage.lacking().next(), Some(Key::LeadId));
        let mut lead = form.clone();
        lead.lead_id = Some(123_456_789_012_345);
        lead.ctwa_clid = Some("ARAkLkA".into());
        let coverage = Coverage::of(&lead);
        assert!(
            coverage.has(Key::ClickId),
            "a WhatsApp click id is a click id"
        );
        assert_eq!(coverage.score().to_string(), "8.5");
        let full = WEIGHTS
            .iter()
            .fold(Coverage::default(), |c, (k, _)| c.with(*k));
        assert_eq!(full.score(), Score(1000));
        assert_eq!(full.score().to_string(), "10.0");
        assert_eq!(full.lacking().count(), 0);
    }

    #[test]
    fn wire_names_give_the_same_coverage_and_unscored_ones_are_passed_over() {
        let user = user(&[(Field::Email, "a@b.co"), (Field::Zip, "94105")]);
        let names = user.carried();
        let read = names
            .iter()
            .filter_map(|n| Key::of_wire(n))
            .fold(Coverage::default(), Coverage::with);
        assert_eq!(read, Coverage::of(&user));
        assert_eq!(Key::of_wire("madid"), None);
        assert_eq!(Key::of_wire("ctwa_clid"), Some(Key::ClickId));
    }

    #[test]
    fn averages_round_to_the_nearest_hundredth_and_print_one_decimal() {
        assert_eq!(Score::average(0, 0), Score(0));
        assert_eq!(Score::average(1001, 2), Score(501));
        assert_eq!(Score(449).to_string(), "4.5");
        assert_eq!(Score(444).to_string(), "4.4");
        assert_eq!(Score(5).to_string(), "0.1");
    }
}
