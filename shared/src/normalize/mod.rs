//! Normalisation and hashing of customer information, per the project's profile
//! (`reference/normalization.md`): Meta's documentation where it is explicit,
//! `facebook/capi-param-builder` where it is silent, postcodes without any
//! whitespace, phones with the contact's country calling code, stray control
//! characters removed from every field, and countries' former names mapped to the
//! code they have today.
//!
//! [`normalize`] is the one entry point: it returns `None` for a value that must not
//! be sent (so `sha256("")` never reaches Meta) and a [`Normalized`] otherwise;
//! [`digest`] goes on to what Meta receives, remembering values that repeat.

mod chars;
mod countries;
mod identity;
mod memo;
mod person;
mod place;

use std::fmt;
use std::str::FromStr;

use arrayvec::ArrayString;
use sha2::{Digest, Sha256};

pub use memo::digest;
pub use place::country_code;

/// A hashed `user_data` key of the Conversions API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Email,
    Phone,
    FirstName,
    LastName,
    DateOfBirth,
    Gender,
    City,
    State,
    Zip,
    Country,
    ExternalId,
}

impl Field {
    /// Every field, in the order the wire format lists them.
    pub const ALL: [Field; 11] = [
        Field::Email,
        Field::Phone,
        Field::FirstName,
        Field::LastName,
        Field::DateOfBirth,
        Field::Gender,
        Field::City,
        Field::State,
        Field::Zip,
        Field::Country,
        Field::ExternalId,
    ];

    /// The Graph API key (`em`, `ph`, …).
    pub fn key(self) -> &'static str {
        match self {
            Field::Email => "em",
            Field::Phone => "ph",
            Field::FirstName => "fn",
            Field::LastName => "ln",
            Field::DateOfBirth => "db",
            Field::Gender => "ge",
            Field::City => "ct",
            Field::State => "st",
            Field::Zip => "zp",
            Field::Country => "country",
            Field::ExternalId => "external_id",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A field key that is not one of Meta's hashed `user_data` keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown field `{0}` (expected one of em, ph, fn, ln, db, ge, ct, st, zp, country, external_id)"
)]
pub struct UnknownField(pub String);

impl FromStr for Field {
    type Err = UnknownField;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Field::ALL
            .into_iter()
            .find(|f| f.key() == s)
            .ok_or_else(|| UnknownField(s.to_owned()))
    }
}

/// A value ready to hash: either normalised plain text or a digest the caller sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    value: String,
    prehashed: bool,
}

impl Normalized {
    fn plain(value: String) -> Option<Self> {
        (!value.is_empty()).then_some(Normalized {
            value,
            prehashed: false,
        })
    }

    fn prehashed(value: &str) -> Self {
        Normalized {
            value: value.to_owned(),
            prehashed: true,
        }
    }

    /// The normalised value (a passed-through digest as it was given).
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// Whether the input already was a digest and is passed through unhashed.
    pub fn is_prehashed(&self) -> bool {
        self.prehashed
    }

    /// What Meta receives: lowercase hex SHA-256 of the value, or the digest itself.
    pub fn sha256(&self) -> HexDigest {
        if self.prehashed {
            // Passed through only as hex (`looks_like_hashed`), so this always parses.
            HexDigest::from_hex(&self.value).unwrap_or_else(|| sha256_hex(&self.value))
        } else {
            sha256_hex(&self.value)
        }
    }
}

/// A digest as Meta receives it: lowercase hex, 64 digits for SHA-256 (32 for an
/// MD5 a caller sent). Held inline, since an event carries about ten of them and
/// each would otherwise be an allocation; as text already, so serialising one
/// needs no UTF-8 check (that check took a hundredth of `map`'s time).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HexDigest(ArrayString<64>);

impl HexDigest {
    /// A digest given in hex (any case), lowercased; `None` if it is not hex or is
    /// longer than 64 digits.
    pub fn from_hex(digits: &str) -> Option<Self> {
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut text = ArrayString::from(digits).ok()?;
        text.make_ascii_lowercase();
        Some(HexDigest(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for HexDigest {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for HexDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for HexDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for HexDigest {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl serde::Serialize for HexDigest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for HexDigest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        HexDigest::from_hex(&text)
            .ok_or_else(|| serde::de::Error::custom("expected a hex digest of at most 64 digits"))
    }
}

/// Lowercase hex SHA-256 of UTF-8 text.
pub fn sha256_hex(text: &str) -> HexDigest {
    let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
    let mut digits = hex::Buffer::<32>::new();
    // 64 digits always fit.
    HexDigest(ArrayString::from(digits.format(&digest)).unwrap_or_default())
}

/// Normalises `input` for `field`. `country` is the contact's country (a code or a
/// name), used to give nationally written phone numbers their calling code.
pub fn normalize(field: Field, input: &str, country: Option<&str>) -> Option<Normalized> {
    let cleaned = chars::without_controls(input);
    let trimmed = chars::js_trim(&cleaned);
    if chars::looks_like_hashed(trimmed) {
        return Some(Normalized::prehashed(trimmed));
    }
    let value = match field {
        Field::Email => identity::email(trimmed),
        Field::Phone => identity::phone(trimmed, country),
        Field::ExternalId => identity::external_id(trimmed),
        Field::FirstName | Field::LastName => person::name(trimmed),
        Field::DateOfBirth => person::date_of_birth(trimmed),
        Field::Gender => person::gender(trimmed),
        Field::City => place::city(trimmed),
        Field::State => place::state(trimmed),
        Field::Zip => place::zip(trimmed),
        Field::Country => place::country(trimmed),
    }?;
    Normalized::plain(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_keys_round_trip() {
        for f in Field::ALL {
            assert_eq!(f.key().parse::<Field>(), Ok(f));
        }
        assert!("email".parse::<Field>().is_err());
    }

    #[test]
    fn an_empty_result_is_dropped_never_hashed() {
        assert_eq!(normalize(Field::FirstName, "  !!! ", None), None);
        assert_eq!(normalize(Field::Email, "", None), None);
    }

    #[test]
    fn hex_digests_are_lowercase_hex_of_at_most_64_digits_and_round_trip() {
        let digest = HexDigest::from_hex("ABCdef0123").expect("hex");
        assert_eq!(digest.as_str(), "abcdef0123");
        assert_eq!(HexDigest::from_hex("xyz"), None);
        assert_eq!(HexDigest::from_hex(&"a".repeat(65)), None);
        let hash = sha256_hex("john");
        assert_eq!(
            hash,
            "96d9632f363564cc3032521409cf22a852f2032eec099ed5967c0d000cec607a"
        );
        let json = serde_json::to_string(&hash).expect("serialises");
        assert_eq!(serde_json::from_str::<HexDigest>(&json).ok(), Some(hash));
        assert!(serde_json::from_str::<HexDigest>("\"not hex\"").is_err());
    }

    #[test]
    fn stray_control_characters_leave_every_field_before_it_is_normalised() {
        let cases = [
            (Field::Zip, "ZIP\u{0}123", "zip123"),
            (Field::ExternalId, "external\u{1}id", "externalid"),
            (
                Field::Email,
                "\u{7f}jane@example.com\u{0}",
                "jane@example.com",
            ),
            (Field::FirstName, "Jo\u{85}hn", "john"),
            (Field::City, "San\u{1b}Francisco", "sanfrancisco"),
            (Field::Phone, "+1 650\u{8} 555 1212", "16505551212"),
        ];
        for (field, input, expected) in cases {
            let got = normalize(field, input, None).map(|n| n.as_str().to_owned());
            assert_eq!(got.as_deref(), Some(expected), "{field} {input:?}");
        }
        // Whitespace controls are still whitespace, each field's own way.
        assert_eq!(
            normalize(Field::Gender, "\tmale\n", None).map(|n| n.as_str().to_owned()),
            Some("m".to_owned())
        );
        assert_eq!(normalize(Field::Country, "\u{0}", None), None);
    }

    #[test]
    fn a_digest_passes_through_and_is_sent_lowercase() {
        let digest = "A665A45920422F9D417E4867EFDC4FB8A04A1F3FFF1FA07E998E86F7F7A27AE3";
        let n = normalize(Field::Email, digest, None).expect("digest kept");
        assert!(n.is_prehashed());
        assert_eq!(n.as_str(), digest);
        assert_eq!(n.sha256().to_string(), digest.to_ascii_lowercase());
    }
}
