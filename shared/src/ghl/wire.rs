//! What every call to GHL shares: the base URL, the version header, the shape of
//! its error bodies, the ids that may go into a path, and the access token.

use std::fmt;

use serde_json::Value;

use super::reader::GhlError;

/// The API version header GHL's Contacts API (and most others) requires.
pub const API_VERSION: &str = "2021-07-28";
/// The one GHL's Calendars API requires (`apps/calendars.json`).
pub const CALENDARS_API_VERSION: &str = "2021-04-15";

/// The version header a call to `path` carries.
pub fn api_version(path: &str) -> &'static str {
    if path.starts_with("/calendars") {
        CALENDARS_API_VERSION
    } else {
        API_VERSION
    }
}
/// GHL's API.
pub const DEFAULT_BASE_URL: &str = "https://services.leadconnectorhq.com";

/// A location's access token (a Private Integration token, or an OAuth access
/// token). `Debug` never shows it.
#[derive(Clone)]
pub struct LocationToken(pub String);

impl fmt::Debug for LocationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocationToken(<redacted>)")
    }
}

/// GHL's error text: `message` is a string, or a list of them (422).
pub fn error_message(body: &str) -> String {
    let value: Value = serde_json::from_str(body).unwrap_or_default();
    match value.get("message") {
        Some(Value::String(m)) => m.clone(),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("; "),
        _ => value
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no reason given")
            .to_owned(),
    }
}

/// Ids go into paths: refuse anything that is not a plain GHL id.
pub fn id(raw: &str) -> Result<&str, GhlError> {
    if !raw.is_empty()
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(raw)
    } else {
        Err(GhlError::NotFound)
    }
}
