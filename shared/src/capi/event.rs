//! Server events and request bodies.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::UserData;

/// Meta accepts at most this many events in one request.
pub const MAX_BATCH: usize = 1000;

/// Meta's standard event names. A name that differs from one of them only in case
/// would be counted by Meta as a different, custom event.
pub const STANDARD_EVENTS: [&str; 17] = [
    "AddPaymentInfo",
    "AddToCart",
    "AddToWishlist",
    "CompleteRegistration",
    "Contact",
    "CustomizeProduct",
    "Donate",
    "FindLocation",
    "InitiateCheckout",
    "Lead",
    "Purchase",
    "Schedule",
    "Search",
    "StartTrial",
    "SubmitApplication",
    "Subscribe",
    "ViewContent",
];

/// `name` trimmed, with a standard event name spelled as Meta spells it
/// (`purchase` → `Purchase`); custom names are kept as given.
pub fn canonical_event_name(name: &str) -> String {
    let name = name.trim();
    STANDARD_EVENTS
        .iter()
        .find(|s| s.eq_ignore_ascii_case(name))
        .map_or_else(|| name.to_owned(), |s| (*s).to_owned())
}

/// Where the conversion happened (`action_source`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionSource {
    Email,
    Website,
    App,
    PhoneCall,
    Chat,
    PhysicalStore,
    /// CRM events (Conversion Leads): the default for everything GHL reports.
    #[default]
    SystemGenerated,
    BusinessMessaging,
    Other,
}

/// One server event, as the Graph API expects it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ServerEvent {
    pub event_name: String,
    /// Unix seconds.
    pub event_time: i64,
    /// With `event_name`, Meta's deduplication key (48 h window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    pub action_source: ActionSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_source_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer_url: Option<String>,
    pub user_data: UserData,
    #[serde(default, skip_serializing_if = "CustomData::is_empty")]
    pub custom_data: CustomData,
    /// `["LDU"]` for Limited Data Use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_processing_options: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_processing_options_country: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_processing_options_state: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_out: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_event_data: Option<OriginalEventData>,
}

/// The event an update refers to (`original_event_data`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OriginalEventData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

/// `custom_data`: Meta's standard keys plus free extra properties.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CustomData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// ISO 4217, uppercase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_category: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contents: Vec<Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_ltv: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_revenue: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_items: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_string: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_number: Option<String>,
    /// Conversion Leads: the CRM's name (e.g. `HighLevel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_event_source: Option<String>,
    /// Conversion Leads: always `crm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_source: Option<String>,
    /// Custom properties, sent as given.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl CustomData {
    /// Nothing set: the key is left out of the event.
    pub fn is_empty(&self) -> bool {
        // One empty value to compare with, rather than one built and dropped for
        // every event serialised.
        static EMPTY: LazyLock<CustomData> = LazyLock::new(CustomData::default);
        *self == *EMPTY
    }
}

/// One item of `custom_data.contents`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Content {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_price: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_category: Option<String>,
}

/// A request body for `POST /{version}/{pixel}/events`. The access token travels
/// separately (never inside a body we log or store).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventRequest {
    pub data: Vec<ServerEvent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_event_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_agent: Option<String>,
}

/// A deterministic event id: the same location, contact, rule and source change give
/// the same id, so a redelivered webhook or a retried message deduplicates at Meta.
pub fn event_id(location_id: &str, contact_id: &str, rule: &str, change: &str) -> String {
    let mut id = String::new();
    write_event_id(&mut id, location_id, contact_id, rule, change);
    id
}

/// [`event_id`] written over `out`, keeping its allocation.
pub fn write_event_id(
    out: &mut String,
    location_id: &str,
    contact_id: &str,
    rule: &str,
    change: &str,
) {
    let mut hasher = Sha256::new();
    for part in [location_id, contact_id, rule, change] {
        hasher.update(part.as_bytes());
        // A separator that cannot occur in ids keeps ("ab","c") apart from ("a","bc").
        hasher.update([0x1f]);
    }
    let digest = hasher.finalize();
    out.clear();
    out.push_str("ghl-");
    out.push_str(hex::Buffer::<16>::new().format_slice(&digest[..16]));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::HexDigest;
    use serde_json::json;

    #[test]
    fn event_ids_are_stable_and_distinguish_their_parts() {
        let a = event_id("loc", "c1", "lead", "2026-11-25T00:00:00Z");
        assert_eq!(a, event_id("loc", "c1", "lead", "2026-11-25T00:00:00Z"));
        assert_ne!(a, event_id("loc", "c1", "purchase", "2026-11-25T00:00:00Z"));
        assert_ne!(event_id("ab", "c", "r", "x"), event_id("a", "bc", "r", "x"));
        assert_eq!(a.len(), 36);
        let mut reused = "a longer id written before".to_owned();
        write_event_id(&mut reused, "loc", "c1", "lead", "2026-11-25T00:00:00Z");
        assert_eq!(reused, a);
    }

    #[test]
    fn serialises_without_nulls_or_empty_lists() {
        let mut event = ServerEvent {
            event_name: "Lead".into(),
            event_time: 1_764_000_000,
            ..ServerEvent::default()
        };
        event
            .user_data
            .em
            .push(HexDigest::from_hex("abc").expect("hex"));
        let json = serde_json::to_value(&event).expect("serialises");
        assert_eq!(
            json,
            serde_json::json!({
                "event_name": "Lead",
                "event_time": 1_764_000_000,
                "action_source": "system_generated",
                "user_data": {"em": ["abc"]}
            })
        );
    }

    #[test]
    fn every_action_source_has_its_wire_name() {
        let all = [
            (ActionSource::Email, "email"),
            (ActionSource::Website, "website"),
            (ActionSource::App, "app"),
            (ActionSource::PhoneCall, "phone_call"),
            (ActionSource::Chat, "chat"),
            (ActionSource::PhysicalStore, "physical_store"),
            (ActionSource::SystemGenerated, "system_generated"),
            (ActionSource::BusinessMessaging, "business_messaging"),
            (ActionSource::Other, "other"),
        ];
        for (source, wire) in all {
            assert_eq!(serde_json::to_value(source).expect("ser"), wire);
        }
    }

    #[test]
    fn custom_data_keeps_extra_keys_beside_standard_ones() {
        let mut data = CustomData {
            value: Some(40.0),
            currency: Some("USD".into()),
            lead_event_source: Some("HighLevel".into()),
            event_source: Some("crm".into()),
            ..CustomData::default()
        };
        data.extra.insert("stage".into(), "won".into());
        let json = serde_json::to_value(&data).expect("ser");
        assert_eq!(json["stage"], "won");
        assert_eq!(json["event_source"], "crm");
        assert!(!data.is_empty() && CustomData::default().is_empty());
    }

    #[test]
    fn custom_data_with_any_one_key_is_not_empty() {
        // Each standard key alone, from its wire name, and one extra key.
        for (key, value) in [
            ("value", json!(1.0)),
            ("currency", json!("USD")),
            ("content_name", json!("x")),
            ("content_category", json!("x")),
            ("content_ids", json!(["x"])),
            ("contents", json!([{"id": "x"}])),
            ("content_type", json!("product")),
            ("order_id", json!("x")),
            ("predicted_ltv", json!(1.0)),
            ("net_revenue", json!(1.0)),
            ("num_items", json!(1)),
            ("status", json!("x")),
            ("search_string", json!("x")),
            ("delivery_category", json!("home_delivery")),
            ("item_number", json!("x")),
            ("lead_event_source", json!("HighLevel")),
            ("event_source", json!("crm")),
            ("plan", json!("pro")),
        ] {
            let data: CustomData =
                serde_json::from_value(json!({ key: value })).expect("custom_data");
            assert!(!data.is_empty(), "{key}");
        }
    }
}
