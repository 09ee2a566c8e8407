//! The API keys of the keyed routes (posted conversions, workflow calls), each scoped to the locations (and, if it says
//! so, the event types) it may post for.
//!
//! The secret (or `CONVERSION_API_KEYS` locally) holds a JSON list whose entries are
//! `{"id": "…", "key": "…", "locations": ["…"], "event_types": ["…"]}`, or, as
//! before scopes existed, a bare key string (or one key per line). A bare key
//! names no location: it is refused ([`Forbidden::Unscoped`], and an error line at
//! start) unless `ALLOW_UNSCOPED_KEYS` says otherwise, and then may post for every
//! location, with a warning. Logs and metrics name a key by its `id` (for a bare
//! key, `key-` and the start of its SHA-256), never the key.

use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::normalize::sha256_hex;

/// One key and what it may do.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    key: String,
    /// The locations it may post for; `None`: all (a key without scopes).
    pub locations: Option<Vec<String>>,
    /// The event types it may post; `None`: all.
    pub event_types: Option<Vec<String>>,
    /// A key without locations that may not post at all ([`ApiKeys::refuse_unscoped`]).
    unscoped_refused: bool,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("locations", &self.locations)
            .field("event_types", &self.event_types)
            .finish_non_exhaustive()
    }
}

/// An entry of the list, as stored.
#[derive(Deserialize)]
#[serde(untagged)]
enum Entry {
    Bare(String),
    Scoped {
        id: String,
        key: String,
        locations: Vec<String>,
        #[serde(default)]
        event_types: Option<Vec<String>>,
    },
}

/// What is wrong with the stored keys.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeysError {
    #[error("the API keys are not a JSON list of keys or {{id, key, locations}} entries: {0}")]
    Unreadable(String),
    #[error("API key {id} names no location; give its locations, or store the bare key for all")]
    NoLocations { id: String },
    #[error("API key {id} is empty")]
    Empty { id: String },
    #[error("two API keys are named {id}")]
    SameId { id: String },
}

/// Why a key may not post this conversion.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Forbidden {
    #[error("API key {id} may not post for location {location}")]
    Location { id: String, location: String },
    #[error("API key {id} may not post {event_type} events")]
    EventType { id: String, event_type: String },
    #[error("API key {id} may post only some event types, and this names none (give it an event)")]
    NoEventType { id: String },
    #[error(
        "API key {id} names no locations, and such keys are refused: store it with its \
         locations (ghl-capi keys new --location …), or set ALLOW_UNSCOPED_KEYS=true"
    )]
    Unscoped { id: String },
}

/// Where a request may carry its key: `Authorization: Bearer <key>` (a Custom
/// Webhook action's auth setting, or any HTTP client), `X-Api-Key: <key>` (callers
/// that can only add plain headers), and for workflow calls, where GHL's plain
/// Webhook action can put it (it may offer no header at all): the URL's last
/// segment (`/workflows/ghl/<key>`), or a Custom Data row
/// ([`crate::ghl::workflow::KEY_FIELDS`]).
#[derive(Clone, Copy, Default)]
pub struct Credentials<'a> {
    pub authorization: Option<&'a str>,
    pub api_key: Option<&'a str>,
    /// The key as the URL's last segment.
    pub in_path: Option<&'a str>,
    /// The key as a field of the body (taken out of it before anything keeps it).
    pub in_body: Option<&'a str>,
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |v: Option<&str>| v.map(|_| "<redacted>");
        f.debug_struct("Credentials")
            .field("authorization", &shown(self.authorization))
            .field("api_key", &shown(self.api_key))
            .field("in_path", &shown(self.in_path))
            .field("in_body", &shown(self.in_body))
            .finish()
    }
}

impl<'a> Credentials<'a> {
    /// The key presented: the bearer token, else the `X-Api-Key` header's, else
    /// the URL's, else the body's. The first one given is the one checked.
    pub(crate) fn presented(self) -> Option<&'a str> {
        let given = |k: Option<&'a str>| k.map(str::trim).filter(|k| !k.is_empty());
        given(self.authorization.and_then(|a| a.strip_prefix("Bearer ")))
            .or(given(self.api_key))
            .or(given(self.in_path))
            .or(given(self.in_body))
    }
}

/// The keys of one secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiKeys(Vec<ApiKey>);

/// A bare key's id: `key-` and the first 8 hex digits of its SHA-256, which tell
/// keys apart in logs and say nothing of the key itself.
fn bare_id(key: &str) -> String {
    format!("key-{}", &sha256_hex(key).as_str()[..8])
}

impl ApiKeys {
    /// Reads a secret's text: a JSON list (scoped entries and bare keys), or one
    /// bare key per line.
    pub fn parse(text: &str) -> Result<ApiKeys, KeysError> {
        let text = text.trim();
        let entries: Vec<Entry> = if text.starts_with('[') {
            serde_json::from_str(text).map_err(|e| KeysError::Unreadable(e.to_string()))?
        } else {
            text.lines()
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(|k| Entry::Bare(k.to_owned()))
                .collect()
        };
        let mut keys = Vec::with_capacity(entries.len());
        for entry in entries {
            let key = match entry {
                Entry::Bare(key) => ApiKey {
                    id: bare_id(&key),
                    key,
                    locations: None,
                    event_types: None,
                    unscoped_refused: false,
                },
                Entry::Scoped {
                    id,
                    key,
                    locations,
                    event_types,
                } => {
                    if locations.is_empty() {
                        return Err(KeysError::NoLocations { id });
                    }
                    ApiKey {
                        id,
                        key,
                        locations: Some(locations),
                        event_types,
                        unscoped_refused: false,
                    }
                }
            };
            if key.key.trim().is_empty() {
                return Err(KeysError::Empty { id: key.id });
            }
            if keys.iter().any(|k: &ApiKey| k.id == key.id) {
                return Err(KeysError::SameId { id: key.id });
            }
            keys.push(key);
        }
        Ok(ApiKeys(keys))
    }

    /// Keys without locations post nowhere (the default: `ALLOW_UNSCOPED_KEYS`
    /// unset), unless `allowed`.
    pub fn refuse_unscoped(mut self, allowed: bool) -> Self {
        for key in &mut self.0 {
            key.unscoped_refused = key.locations.is_none() && !allowed;
        }
        self
    }

    /// The ids of the keys without locations (stored bare).
    pub fn unscoped(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(|k| k.locations.is_none())
            .map(|k| k.id.as_str())
    }

    /// The key `credentials` carry, if it is one of these. Every key is compared,
    /// in constant time, so timing tells nothing about how close a guess was, or
    /// which key it was near.
    pub fn find(&self, credentials: Credentials<'_>) -> Option<&ApiKey> {
        let presented = credentials.presented()?;
        let mut found = None;
        for key in &self.0 {
            if bool::from(key.key.as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(key);
            }
        }
        found
    }
}

impl ApiKey {
    /// Whether it may post for `location` an event of `event_type` (`None`: the
    /// request names none, as a workflow call may not).
    pub fn allows(&self, location: &str, event_type: Option<&str>) -> Result<(), Forbidden> {
        if self.unscoped_refused {
            return Err(Forbidden::Unscoped {
                id: self.id.clone(),
            });
        }
        if let Some(locations) = &self.locations
            && !locations.iter().any(|l| l == location)
        {
            return Err(Forbidden::Location {
                id: self.id.clone(),
                location: location.to_owned(),
            });
        }
        let Some(types) = &self.event_types else {
            return Ok(());
        };
        match event_type {
            None => Err(Forbidden::NoEventType {
                id: self.id.clone(),
            }),
            Some(wanted) if !types.iter().any(|t| t.eq_ignore_ascii_case(wanted)) => {
                Err(Forbidden::EventType {
                    id: self.id.clone(),
                    event_type: wanted.to_owned(),
                })
            }
            Some(_) => Ok(()),
        }
    }

    /// A new stored entry: `key` for `locations` (and only `event_types`, if any).
    pub fn entry(
        id: &str,
        key: &str,
        locations: &[String],
        event_types: &[String],
    ) -> serde_json::Value {
        let mut entry = serde_json::json!({"id": id, "key": key, "locations": locations});
        if !event_types.is_empty() {
            entry["event_types"] = serde_json::json!(event_types);
        }
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(header: &str) -> Credentials<'_> {
        Credentials {
            authorization: Some(header),
            api_key: None,
            ..Default::default()
        }
    }

    const STORED: &str = r#"[
        {"id": "shop-a", "key": "ck_a_0123456789", "locations": ["loc-a"]},
        {"id": "crm", "key": "ck_crm_0123456789", "locations": ["loc-a", "loc-b"], "event_types": ["Purchase"]},
        "ck_legacy_0123456789"
    ]"#;

    #[test]
    fn a_key_without_locations_posts_nowhere_unless_allowed() {
        let legacy = Credentials {
            authorization: None,
            api_key: Some("ck_legacy_0123456789"),
            ..Default::default()
        };
        let refused = ApiKeys::parse(STORED).expect("keys").refuse_unscoped(false);
        let key = refused.find(legacy).expect("found");
        let Err(Forbidden::Unscoped { id }) = key.allows("loc-a", Some("Lead")) else {
            panic!("refused")
        };
        assert!(id.starts_with("key-"));
        let scoped = refused
            .find(bearer("Bearer ck_a_0123456789"))
            .expect("found");
        assert_eq!(scoped.allows("loc-a", Some("Lead")), Ok(()));
        let allowed = ApiKeys::parse(STORED).expect("keys").refuse_unscoped(true);
        let key = allowed.find(legacy).expect("found");
        assert_eq!(key.allows("anywhere", Some("Lead")), Ok(()));
    }

    #[test]
    fn scoped_and_bare_keys_are_read_and_found_by_the_bearer_header() {
        let keys = ApiKeys::parse(STORED).expect("keys");
        let a = keys.find(bearer("Bearer ck_a_0123456789")).expect("found");
        assert_eq!(a.id, "shop-a");
        assert_eq!(a.allows("loc-a", Some("Lead")), Ok(()));
        assert!(matches!(
            a.allows("loc-b", Some("Lead")),
            Err(Forbidden::Location { .. })
        ));
        let crm = keys
            .find(bearer("Bearer ck_crm_0123456789"))
            .expect("found");
        assert_eq!(crm.allows("loc-b", Some("purchase")), Ok(()));
        assert!(matches!(
            crm.allows("loc-b", Some("Lead")),
            Err(Forbidden::EventType { .. })
        ));
        let legacy = keys
            .find(bearer("Bearer ck_legacy_0123456789"))
            .expect("found");
        assert_eq!(legacy.allows("anywhere", None), Ok(()));
        assert!(legacy.id.starts_with("key-") && !legacy.id.contains("legacy"));
        assert_eq!(keys.unscoped().collect::<Vec<_>>(), [legacy.id.as_str()]);
        assert!(matches!(
            crm.allows("loc-b", None),
            Err(Forbidden::NoEventType { .. })
        ));
        for bad in [
            None,
            Some("ck_a_0123456789"),
            Some("Bearer "),
            Some("Bearer ck_a_012345678"),
            Some("Basic ck_a_0123456789"),
        ] {
            let credentials = Credentials {
                authorization: bad,
                api_key: None,
                ..Default::default()
            };
            assert!(keys.find(credentials).is_none(), "{bad:?}");
        }
        // X-Api-Key serves callers that can only add plain headers; a bearer
        // token, when there is one, is the key presented.
        let header = |api_key| Credentials {
            authorization: None,
            api_key: Some(api_key),
            ..Default::default()
        };
        assert_eq!(
            keys.find(header(" ck_a_0123456789")).map(|k| k.id.as_str()),
            Some("shop-a")
        );
        assert!(keys.find(header("")).is_none());
        let both = Credentials {
            authorization: Some("Bearer ck_crm_0123456789"),
            api_key: Some("ck_a_0123456789"),
            ..Default::default()
        };
        assert_eq!(keys.find(both).map(|k| k.id.as_str()), Some("crm"));
        let basic = Credentials {
            authorization: Some("Basic eDp5"),
            api_key: Some("ck_a_0123456789"),
            ..Default::default()
        };
        assert_eq!(keys.find(basic).map(|k| k.id.as_str()), Some("shop-a"));
        assert!(
            !format!("{both:?}").contains("ck_"),
            "Debug never shows a key"
        );
        assert!(
            !format!("{a:?}").contains("ck_a"),
            "Debug never shows the key"
        );
    }

    #[test]
    fn one_key_per_line_is_still_read_and_bad_lists_are_refused_with_why() {
        let keys = ApiKeys::parse("k1\n\n k2 \n").expect("keys");
        assert!(keys.find(bearer("Bearer k2")).is_some());
        assert_eq!(ApiKeys::parse("").expect("none"), ApiKeys::default());
        let no_location = r#"[{"id": "x", "key": "k", "locations": []}]"#;
        assert_eq!(
            ApiKeys::parse(no_location),
            Err(KeysError::NoLocations { id: "x".into() })
        );
        let twice = r#"[{"id": "x", "key": "k1", "locations": ["l"]}, {"id": "x", "key": "k2", "locations": ["l"]}]"#;
        assert_eq!(
            ApiKeys::parse(twice),
            Err(KeysError::SameId { id: "x".into() })
        );
        assert!(matches!(
            ApiKeys::parse("[{\"key\": 1}]"),
            Err(KeysError::Unreadable(_))
        ));
    }
}
