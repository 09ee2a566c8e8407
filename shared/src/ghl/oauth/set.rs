//! What GHL's token endpoint answers ([`TokenResponse`], read leniently) and what
//! is kept of it per location or company ([`TokenSet`]).

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A token set as GHL returns it.
#[derive(Clone, Default)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: Option<i64>,
    pub scope: Option<String>,
    pub user_type: Option<String>,
    pub location_id: Option<String>,
    pub company_id: Option<String>,
    pub approved_locations: Vec<String>,
}

impl TokenResponse {
    /// GHL's answer, read as leniently as a rotated refresh token deserves: any
    /// field of an unexpected shape is left out (`approvedLocations: null`, an
    /// `expires_in` written as a fraction or as text), and from a body cut short
    /// the tokens are still taken. `None` when it carries neither token.
    pub fn read(body: &str) -> Option<TokenResponse> {
        let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(body) else {
            return Self::salvaged(body);
        };
        let text = |key: &str| {
            fields
                .get(key)
                .and_then(serde_json::Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let response = TokenResponse {
            access_token: text("access_token").unwrap_or_default(),
            refresh_token: text("refresh_token"),
            expires_in: fields.get("expires_in").and_then(|v| match v {
                serde_json::Value::Number(n) => n.as_i64().or(n.as_f64().map(|f| f as i64)),
                serde_json::Value::String(s) => s.trim().parse::<f64>().ok().map(|f| f as i64),
                _ => None,
            }),
            scope: text("scope"),
            user_type: text("userType"),
            location_id: text("locationId"),
            company_id: text("companyId"),
            approved_locations: fields
                .get("approvedLocations")
                .and_then(serde_json::Value::as_array)
                .map(|all| {
                    all.iter()
                        .filter_map(|l| l.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        };
        (!response.access_token.is_empty() || response.refresh_token.is_some()).then_some(response)
    }

    /// The tokens of a body that is not JSON as a whole (cut short on the way).
    fn salvaged(body: &str) -> Option<TokenResponse> {
        let field = |key: &str| {
            let after = &body[body.find(&format!("\"{key}\""))? + key.len() + 2..];
            let value = after.trim_start().strip_prefix(':')?.trim_start();
            let value = value.strip_prefix('"')?;
            let end = value.find('"')?;
            Some(value[..end].to_owned()).filter(|v| !v.is_empty())
        };
        let response = TokenResponse {
            access_token: field("access_token").unwrap_or_default(),
            refresh_token: field("refresh_token"),
            ..TokenResponse::default()
        };
        (!response.access_token.is_empty() || response.refresh_token.is_some()).then_some(response)
    }
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("user_type", &self.user_type)
            .field("location_id", &self.location_id)
            .field("company_id", &self.company_id)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// What we keep per location (or company): GHL's answer, with when it expires. A
/// Private Integration token is a set with only an access token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSet {
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// `Location` or `Company`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The secret version this set was refreshed from: how a refresh that was
    /// written but not yet made current is recognised and finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshed_from: Option<String>,
    /// Set when GHL refused to refresh: the app must be installed again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs_reinstall: Option<String>,
    /// Refreshed because GHL refused the token before it: refused again, it is
    /// not refreshed again (a refresh per token version at most).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after_refusal: bool,
    /// Since when a refresh's outcome is unknown: the request may have reached GHL
    /// and its answer was lost (a timeout, a server error, an unreadable answer),
    /// so GHL may have rotated the refresh token kept here. Cleared by a refresh
    /// that works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsure_since: Option<DateTime<Utc>>,
    /// Set when GHL refused the refresh token after such an unknown outcome: the
    /// rotated token was most likely lost here, not revoked by anyone. The set is
    /// not retired on GHL's word alone; it is not refreshed again, its work is
    /// held and an alarm raised until a person installs the app again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_lost: Option<String>,
    /// When the app was installed (the set first stored): an `UNINSTALL` GHL sent
    /// before it is about an earlier install, and retires nothing. Kept through
    /// refreshes; absent in sets stored by builds before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("expires_at", &self.expires_at)
            .field("user_type", &self.user_type)
            .field("location_id", &self.location_id)
            .field("needs_reinstall", &self.needs_reinstall)
            .finish_non_exhaustive()
    }
}

/// The longest life a token is taken to have.
const MAX_TOKEN_LIFE_SECONDS: i64 = 365 * 24 * 3600;

impl TokenSet {
    /// A secret's text: a token set as JSON, or a bare token (a Private
    /// Integration token).
    pub fn parse(text: &str) -> Option<TokenSet> {
        let text = text.trim();
        if text.starts_with('{') {
            serde_json::from_str(text).ok()
        } else if text.is_empty() {
            None
        } else {
            Some(TokenSet::fixed(text))
        }
    }

    /// A token that never refreshes.
    pub fn fixed(token: &str) -> TokenSet {
        TokenSet {
            access_token: token.to_owned(),
            refresh_token: None,
            expires_at: None,
            user_type: None,
            location_id: None,
            company_id: None,
            scope: None,
            refreshed_from: None,
            needs_reinstall: None,
            after_refusal: false,
            unsure_since: None,
            refresh_lost: None,
            installed_at: None,
        }
    }

    /// GHL's answer received at `now`.
    pub fn from_response(response: TokenResponse, now: DateTime<Utc>) -> TokenSet {
        TokenSet {
            access_token: response.access_token,
            refresh_token: response.refresh_token,
            // Within a year, whatever GHL says: an absurd value must not
            // overflow the clock (a token is refreshed long before anyway).
            expires_at: response
                .expires_in
                .map(|secs| now + chrono::Duration::seconds(secs.clamp(0, MAX_TOKEN_LIFE_SECONDS))),
            user_type: response.user_type,
            location_id: response.location_id,
            company_id: response.company_id,
            scope: response.scope,
            refreshed_from: None,
            needs_reinstall: None,
            after_refusal: false,
            unsure_since: None,
            refresh_lost: None,
            installed_at: None,
        }
    }

    /// Whether it is kept but not used: retired (the app must be installed again)
    /// or its refresh token lost.
    pub fn held(&self) -> bool {
        self.needs_reinstall.is_some() || self.refresh_lost.is_some()
    }

    /// Whether it expires within `margin` (a set without an expiry never does).
    pub fn due(&self, now: DateTime<Utc>, margin: Duration) -> bool {
        let margin = chrono::Duration::from_std(margin).unwrap_or_default();
        self.expires_at.is_some_and(|at| at - margin <= now)
    }

    pub fn to_json(&self) -> String {
        crate::ports::text(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_answer_is_read_whatever_shape_its_other_fields_take_and_even_cut_short() {
        let odd = r#"{"access_token":"at","refresh_token":"rt-2","expires_in":86399.5,
            "approvedLocations":null,"userType":7,"scope":"contacts.readonly"}"#;
        let read = TokenResponse::read(odd).expect("read");
        assert_eq!(
            (
                read.refresh_token.as_deref(),
                read.expires_in,
                read.user_type
            ),
            (Some("rt-2"), Some(86_399), None)
        );
        assert!(read.approved_locations.is_empty());
        let text = r#"{"access_token":"at","refresh_token":"rt-3","expires_in":"86399"}"#;
        assert_eq!(
            TokenResponse::read(text).expect("read").expires_in,
            Some(86_399)
        );
        let cut =
            r#"{"access_token": "at-4", "token_type":"Bearer", "refresh_token" : "rt-4", "expi"#;
        let salvaged = TokenResponse::read(cut).expect("the tokens of a cut body");
        assert_eq!(
            (
                salvaged.access_token.as_str(),
                salvaged.refresh_token.as_deref()
            ),
            ("at-4", Some("rt-4"))
        );
        for empty in [
            "",
            "<html>",
            r#"{"token_type":"Bearer"}"#,
            r#"{"refresh_tok"#,
        ] {
            assert!(TokenResponse::read(empty).is_none(), "{empty}");
        }
    }

    #[test]
    fn any_expires_in_ghl_sends_gives_a_time_within_a_year_without_panicking() {
        let now: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().expect("time");
        for (secs, after) in [(i64::MAX, 365), (i64::MIN, 0), (86_399, 0)] {
            let body = serde_json::json!({"access_token": "at", "expires_in": secs});
            let answer = TokenResponse::read(&body.to_string()).expect("answer");
            let at = TokenSet::from_response(answer, now)
                .expires_at
                .expect("a time");
            assert!(
                at >= now && at <= now + chrono::Duration::days(365),
                "{secs}: {at}"
            );
            assert!(at >= now + chrono::Duration::days(after), "{secs}: {at}");
        }
    }
}
