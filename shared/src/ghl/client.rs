//! The GHL API over HTTPS: the reads enrichment needs ([`GhlReader`]).
//!
//! Every call carries `Authorization: Bearer <token>` and `Version: 2021-07-28`.
//! Answers map to [`GhlError`]: `404` not found; `429` rate limited, waiting what
//! `X-RateLimit-Interval-Milliseconds` says; `401` token refused (after one retry
//! with the token source's refreshed token); other failures and timeouts unavailable
//! (retried).

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Contact;
use super::tokens::TokenSource;
use crate::enrich::{GhlError, GhlReader};
use crate::mapping::Need;

/// The API version header GHL's Contacts API requires.
pub const API_VERSION: &str = "2021-07-28";
/// GHL's API.
pub const DEFAULT_BASE_URL: &str = "https://services.leadconnectorhq.com";
/// Wait this long after a `429` that does not say how long.
const DEFAULT_RATE_WAIT_MS: u64 = 10_000;

/// A location's access token (a Private Integration token, or an OAuth access
/// token). `Debug` never shows it.
#[derive(Clone)]
pub struct LocationToken(pub String);

impl fmt::Debug for LocationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocationToken(<redacted>)")
    }
}

/// Reads contacts and their records from GHL.
#[derive(Debug, Clone)]
pub struct GhlClient<T> {
    http: reqwest::Client,
    base_url: String,
    tokens: T,
}

impl<T: TokenSource> GhlClient<T> {
    /// A client for `base_url` taking each location's token from `tokens`.
    pub fn new(base_url: &str, tokens: T, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = crate::http::client(timeout)?;
        Ok(GhlClient {
            http,
            base_url: crate::http::base(base_url),
            tokens,
        })
    }

    /// Where its tokens come from.
    pub fn tokens(&self) -> &T {
        &self.tokens
    }

    async fn get<R: DeserializeOwned>(&self, location_id: &str, path: &str) -> Result<R, GhlError> {
        let token = self.tokens.token(location_id).await?;
        match self.get_with(&token, path).await {
            Err(GhlError::Unauthorized) => {
                let token = self.tokens.refreshed(location_id, &token).await?;
                self.get_with(&token, path).await
            }
            answer => answer,
        }
    }

    async fn get_with<R: DeserializeOwned>(
        &self,
        token: &LocationToken,
        path: &str,
    ) -> Result<R, GhlError> {
        let response = self
            .http
            .get(format!("{}{path}", self.base_url))
            .bearer_auth(&token.0)
            .header("Version", API_VERSION)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| GhlError::Unavailable(e.without_url().to_string()))?;
        match response.status().as_u16() {
            200..=299 => response.json().await.map_err(|e| {
                GhlError::Unavailable(format!("unreadable answer: {}", e.without_url()))
            }),
            404 => Err(GhlError::NotFound),
            401 | 403 => Err(GhlError::Unauthorized),
            429 => Err(GhlError::RateLimited {
                retry_after_ms: response
                    .headers()
                    .get("x-ratelimit-interval-milliseconds")
                    .and_then(|v| v.to_str().ok()?.trim().parse().ok())
                    .unwrap_or(DEFAULT_RATE_WAIT_MS),
            }),
            status => Err(GhlError::Unavailable(format!("GHL answered {status}"))),
        }
    }
}

/// Ids go into paths: refuse anything that is not a plain GHL id.
fn id(raw: &str) -> Result<&str, GhlError> {
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

impl<T: TokenSource> GhlReader for GhlClient<T> {
    async fn contact(&self, location_id: &str, contact_id: &str) -> Result<Contact, GhlError> {
        #[derive(serde::Deserialize)]
        struct Wrapper {
            contact: Contact,
        }
        let path = format!("/contacts/{}", id(contact_id)?);
        Ok(self.get::<Wrapper>(location_id, &path).await?.contact)
    }

    async fn related(
        &self,
        location_id: &str,
        contact_id: &str,
        need: Need,
    ) -> Result<Value, GhlError> {
        // GHL wraps each list under its own key; appointments come as `events`.
        let (segment, key) = match need {
            Need::Notes => ("notes", "notes"),
            Need::Tasks => ("tasks", "tasks"),
            Need::Appointments => ("appointments", "events"),
            Need::Attribution => return Ok(Value::Null),
        };
        let path = format!("/contacts/{}/{segment}", id(contact_id)?);
        let mut body: Value = self.get(location_id, &path).await?;
        Ok(body
            .get_mut(key)
            .map(Value::take)
            .unwrap_or(Value::Array(Vec::new())))
    }

    async fn uninstalled(
        &self,
        location_id: Option<&str>,
        company_id: Option<&str>,
    ) -> Result<(), GhlError> {
        self.tokens.uninstalled(location_id, company_id).await
    }
}
