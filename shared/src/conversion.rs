//! Conversions pushed by the user's own systems (`POST /contacts/{contactId}/conversions`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The body of a posted conversion. The contact comes from the path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostedConversion {
    pub location_id: String,
    /// The user's name for what happened (`purchase`, `qualified`, …); rules match on it.
    pub event_type: String,
    /// When it happened, ISO-8601.
    pub timestamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The caller's own id for this conversion; it makes retries idempotent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub custom_data: Map<String, Value>,
}
