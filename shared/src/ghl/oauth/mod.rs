//! GHL's OAuth endpoints: exchanging an install's authorization code, refreshing a
//! token set, and minting a location token from a company (agency) token.
//!
//! Every call is form-encoded, as GHL requires. GHL documents no list of token
//! errors, so a refusal (`400`/`401`/`403`/`422`) is told apart by what it says
//! ([`Refusal::of`]), and only a clear answer retires anything:
//! - the grant is dead (`invalid_grant`: a used or revoked refresh token): the
//!   location needs the app installed again;
//! - the app's own credentials are refused (`invalid_client`, an unauthorized
//!   client): no location is at fault; the app secret is read again, an alarm
//!   raised, and the call tried later;
//! - anything else is a refusal of unknown cause: alarmed and tried later, never
//!   taken as the end of a location.
//!
//! A request that never reached GHL (no connection, `429`) is
//! [`OAuthError::Unavailable`]: nothing changed, worth another try. One whose answer
//! was lost (a timeout, a `5xx`, a `2xx` without a token) is [`OAuthError::Unknown`]:
//! GHL may have rotated the refresh token ([`set`] reads any answer that carries
//! one, however odd its other fields).

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

mod set;

pub use set::{TokenResponse, TokenSet};

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

/// What a refusal of the token endpoint was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This grant (refresh token, code) is dead: only a new install helps.
    Grant,
    /// The app's client id or secret.
    App,
    /// Not said clearly: tried again later.
    Unknown,
}

impl Refusal {
    /// Reads a refusal's body: the OAuth `error` code where GHL gives one, else
    /// its message.
    pub fn of(body: &str) -> Refusal {
        let value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        let code = value
            .get("error")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_ascii_lowercase();
        let message = super::wire::error_message(body).to_ascii_lowercase();
        let says = |words: &[&str]| {
            words
                .iter()
                .any(|w| code.contains(w) || message.contains(w))
        };
        if says(&[
            "invalid_client",
            "unauthorized_client",
            "client credentials",
            "client secret",
            "client_secret",
            "invalid client",
        ]) {
            Refusal::App
        } else if says(&[
            "invalid_grant",
            "invalid grant",
            "invalid refresh token",
            "refresh token is invalid",
            "refresh token has been",
            "authorization code",
        ]) {
            Refusal::Grant
        } else {
            Refusal::Unknown
        }
    }
}

/// A token call that did not give a token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OAuthError {
    #[error("GHL refused the grant ({status}): {message}")]
    Refused {
        status: u16,
        message: String,
        about: Refusal,
    },
    /// GHL never saw the request (it could not be reached, or refused it
    /// unprocessed): nothing changed there.
    #[error("GHL's token endpoint is unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// The request may have reached GHL and its answer was lost or unreadable (a
    /// timeout, a server error, an answer without a token): whether GHL changed
    /// anything (rotated a refresh token) is unknown.
    #[error("the token endpoint's answer was lost: {0}")]
    Unknown(#[source] Cause),
}

impl OAuthError {
    fn unavailable(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        OAuthError::Unavailable(std::sync::Arc::from(source.into()))
    }

    fn unknown(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        OAuthError::Unknown(std::sync::Arc::from(source.into()))
    }

    /// A failed send: GHL never saw a request that could not connect.
    fn sending(e: reqwest::Error) -> Self {
        if e.is_connect() {
            OAuthError::unavailable(e.without_url())
        } else {
            OAuthError::unknown(e.without_url())
        }
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
        let response = request.send().await.map_err(OAuthError::sending)?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .await
            .map_err(|e| OAuthError::unknown(e.without_url()))?;
        match status {
            200..=299 => TokenResponse::read(&body).ok_or_else(|| {
                OAuthError::unknown(format!("GHL answered {status} without a readable token"))
            }),
            400 | 401 | 403 | 422 => Err(OAuthError::Refused {
                status,
                message: error_message(&body),
                about: Refusal::of(&body),
            }),
            // Throttled, or the address is wrong: nothing was done.
            404 | 405 | 429 => Err(OAuthError::unavailable(format!(
                "GHL answered {status}: {}",
                error_message(&body)
            ))),
            _ => Err(OAuthError::unknown(format!(
                "GHL answered {status}: {}",
                error_message(&body)
            ))),
        }
    }

    /// `POST /oauth/token` with an install's authorization `code`.
    pub async fn exchange_code(
        &self,
        code: &str,
        user_type: Option<&str>,
        redirect_uri: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        let mut form = vec![
            ("client_id", self.app.client_id.as_str()),
            ("client_secret", self.app.client_secret.as_str()),
            ("grant_type", "authorization_code"),
            ("code", code),
        ];
        // Optional in GHL's spec: left out, the token is of the install's kind.
        if let Some(user_type) = user_type {
            form.push(("user_type", user_type));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_retires_a_grant_only_when_it_says_the_grant_is_dead() {
        for (body, about) in [
            (
                r#"{"error":"invalid_grant","error_description":"Invalid grant: refresh token is invalid"}"#,
                Refusal::Grant,
            ),
            (
                r#"{"statusCode":400,"message":"Invalid refresh token"}"#,
                Refusal::Grant,
            ),
            (
                r#"{"error":"invalid_client","message":"Invalid client credentials"}"#,
                Refusal::App,
            ),
            (
                r#"{"statusCode":401,"message":"UnAuthorized! client_secret mismatch"}"#,
                Refusal::App,
            ),
            (r#"{"error":"unauthorized_client"}"#, Refusal::App),
            (
                r#"{"statusCode":400,"message":"Location is not active"}"#,
                Refusal::Unknown,
            ),
            (
                r#"{"statusCode":400,"message":"Bad Request"}"#,
                Refusal::Unknown,
            ),
            ("<html>", Refusal::Unknown),
        ] {
            assert_eq!(Refusal::of(body), about, "{body}");
        }
    }
}
