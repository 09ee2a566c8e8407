//! GHL's OAuth endpoints: exchanging an install's authorization code, refreshing a
//! token set, and minting a location token from a company (agency) token.
//!
//! Every call is form-encoded, as GHL requires. A `400`/`401`/`403` answer is a
//! refusal ([`OAuthError::Refused`]): the grant is dead (location inactive, app
//! uninstalled, refresh token used) and retrying cannot help. Anything else is
//! [`OAuthError::Unavailable`] and worth another try.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::reader::Cause;
use super::wire::{API_VERSION, error_message};
use crate::ports::secrets::{SecretError, SecretStore};

/// The marketplace app's credentials. `Debug` never shows the secret.
#[derive(Clone, Deserialize)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: String,
}

impl fmt::Debug for OAuthApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthApp")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// The app's credentials could not be had.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("the app's credentials cannot be read: {0}")]
    Unreadable(#[source] SecretError),
    #[error("secret {name} must hold {{\"client_id\", \"client_secret\"}}: {source}")]
    Malformed {
        name: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The marketplace app's credentials, as the secret `name` holds them.
pub async fn read_app(secrets: &impl SecretStore, name: &str) -> Result<OAuthApp, AppError> {
    let secret = secrets.get(name).await.map_err(AppError::Unreadable)?;
    serde_json::from_str(secret.expose()).map_err(|source| AppError::Malformed {
        name: name.to_owned(),
        source,
    })
}

/// A token set as GHL returns it.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    #[serde(rename = "access_token")]
    pub access_token: String,
    #[serde(rename = "refresh_token", default)]
    pub refresh_token: Option<String>,
    #[serde(rename = "expires_in", default)]
    pub expires_in: Option<i64>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub user_type: Option<String>,
    #[serde(default)]
    pub location_id: Option<String>,
    #[serde(default)]
    pub company_id: Option<String>,
    #[serde(default)]
    pub approved_locations: Vec<String>,
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
        }
    }

    /// GHL's answer received at `now`.
    pub fn from_response(response: TokenResponse, now: DateTime<Utc>) -> TokenSet {
        TokenSet {
            access_token: response.access_token,
            refresh_token: response.refresh_token,
            expires_at: response
                .expires_in
                .map(|secs| now + chrono::Duration::seconds(secs)),
            user_type: response.user_type,
            location_id: response.location_id,
            company_id: response.company_id,
            scope: response.scope,
            refreshed_from: None,
            needs_reinstall: None,
        }
    }

    /// Whether it expires within `margin` (a set without an expiry never does).
    pub fn due(&self, now: DateTime<Utc>, margin: Duration) -> bool {
        let margin = chrono::Duration::from_std(margin).unwrap_or_default();
        self.expires_at.is_some_and(|at| at - margin <= now)
    }

    pub fn to_json(&self) -> String {
        // A struct of strings and dates always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A token call that did not give a token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OAuthError {
    #[error("GHL refused the grant ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("GHL's token endpoint is unavailable: {0}")]
    Unavailable(#[source] Cause),
}

impl OAuthError {
    fn unavailable(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        OAuthError::Unavailable(std::sync::Arc::from(source.into()))
    }
}

/// The endpoints, at `base_url`.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    http: reqwest::Client,
    base_url: String,
    app: OAuthApp,
}

impl OAuthClient {
    pub fn new(base_url: &str, app: OAuthApp, timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(OAuthClient {
            http: crate::http::client(timeout)?,
            base_url: crate::http::base(base_url),
            app,
        })
    }

    pub fn app(&self) -> &OAuthApp {
        &self.app
    }

    async fn post(
        &self,
        path: &str,
        bearer: Option<&str>,
        form: &[(&str, &str)],
    ) -> Result<TokenResponse, OAuthError> {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base_url))
            .header("Accept", "application/json")
            .form(form);
        if let Some(token) = bearer {
            request = request.bearer_auth(token).header("Version", API_VERSION);
        }
        let response = request
            .send()
            .await
            .map_err(|e| OAuthError::unavailable(e.without_url()))?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .await
            .map_err(|e| OAuthError::unavailable(e.without_url()))?;
        match status {
            200..=299 => serde_json::from_str(&body).map_err(OAuthError::unavailable),
            400 | 401 | 403 | 422 => Err(OAuthError::Refused {
                status,
                message: error_message(&body),
            }),
            _ => Err(OAuthError::unavailable(format!(
                "GHL answered {status}: {}",
                error_message(&body)
            ))),
        }
    }

    /// `POST /oauth/token` with an install's authorization `code`.
    pub async fn exchange_code(
        &self,
        code: &str,
        user_type: &str,
        redirect_uri: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        let mut form = vec![
            ("client_id", self.app.client_id.as_str()),
            ("client_secret", self.app.client_secret.as_str()),
            ("grant_type", "authorization_code"),
            ("code", code),
            ("user_type", user_type),
        ];
        if let Some(uri) = redirect_uri {
            form.push(("redirect_uri", uri));
        }
        self.post("/oauth/token", None, &form).await
    }

    /// `POST /oauth/token` with a refresh token; the answer holds a new refresh
    /// token that replaces the old one.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        user_type: &str,
    ) -> Result<TokenResponse, OAuthError> {
        let form = [
            ("client_id", self.app.client_id.as_str()),
            ("client_secret", self.app.client_secret.as_str()),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("user_type", user_type),
        ];
        self.post("/oauth/token", None, &form).await
    }

    /// `POST /oauth/locationToken`: a location's token minted with the company's.
    pub async fn location_token(
        &self,
        company_token: &str,
        company_id: &str,
        location_id: &str,
    ) -> Result<TokenResponse, OAuthError> {
        let form = [("companyId", company_id), ("locationId", location_id)];
        self.post("/oauth/locationToken", Some(company_token), &form)
            .await
    }
}
