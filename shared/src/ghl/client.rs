//! The GHL API over HTTPS: the reads enrichment needs ([`GhlReader`]).
//!
//! Every call carries `Authorization: Bearer <token>` and `Version: 2021-07-28`,
//! and goes only when the location's budget allows it for what it is for
//! ([`Budget`]): a call waits out a window once (up to 10 s); one the budget still
//! does not allow (a day kept for enrichment, or spent) is not sent and fails
//! [`GhlError::Reserved`], for its caller to try later.
//! Answers map to [`GhlError`]: `404` not found; `429` rate limited, waiting what
//! `X-RateLimit-Interval-Milliseconds` says; `401` token refused (after one retry
//! with the token source's refreshed token); other failures and timeouts unavailable
//! (retried).

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Contact;
use super::budget::{Budget, MAX_WAIT, Taken, Use, header};
use super::cache::ContactCache;
use super::reader::{GhlError, GhlReader, Related};
use super::tokens::TokenSource;
use super::wire::{LocationToken, error_message, id};
use crate::telemetry::DETAIL;

/// Wait this long after a `429` that does not say how long.
const DEFAULT_RATE_WAIT_MS: u64 = 10_000;
/// How long a contact read serves later jobs when none is set.
pub const DEFAULT_CONTACT_CACHE: Duration = Duration::from_secs(60);

/// Reads contacts and their records from GHL. Its clones share one budget and one
/// cache of contact reads.
#[derive(Debug, Clone)]
pub struct GhlClient<T> {
    http: reqwest::Client,
    base_url: String,
    tokens: T,
    budget: Arc<Budget>,
    contacts: Arc<ContactCache>,
}

impl<T: TokenSource> GhlClient<T> {
    /// A client for `base_url` taking each location's token from `tokens`.
    pub fn new(base_url: &str, tokens: T, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = crate::http::client(timeout)?;
        Ok(GhlClient {
            http,
            base_url: crate::http::base(base_url),
            tokens,
            budget: Default::default(),
            contacts: Arc::new(ContactCache::new(DEFAULT_CONTACT_CACHE)),
        })
    }

    /// Where its tokens come from.
    pub fn tokens(&self) -> &T {
        &self.tokens
    }

    /// Each location's budget, as GHL last said it and enrichment spent it.
    pub(super) fn budget(&self) -> &Budget {
        &self.budget
    }

    /// `GET path`.
    pub(super) async fn get<R: DeserializeOwned>(
        &self,
        (location_id, used): (&str, Use),
        path: &str,
    ) -> Result<R, GhlError> {
        self.call((location_id, used), Method::GET, path, &[], None)
            .await
    }

    /// One call for `location_id`, `used` for one thing: its token, the budget,
    /// and after a `401` one retry with a refreshed token.
    pub(super) async fn call<R: DeserializeOwned>(
        &self,
        (location_id, used): (&str, Use),
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<R, GhlError> {
        let token = self.tokens.token(location_id).await?;
        let call = |token| {
            let at = (location_id, used);
            self.call_with(at, token, method.clone(), path, query, body)
        };
        match call(&token).await {
            Err(GhlError::Unauthorized) => {
                let token = self.tokens.refreshed(location_id, &token).await?;
                call(&token).await
            }
            answer => answer,
        }
    }

    async fn call_with<R: DeserializeOwned>(
        &self,
        (location_id, used): (&str, Use),
        token: &LocationToken,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<R, GhlError> {
        let taken = self.admitted(location_id, used).await?;
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth(&token.0)
            .header("Version", super::wire::api_version(path))
            .header("Accept", "application/json");
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let started = std::time::Instant::now();
        let response = request.send().await.map_err(|e| {
            crate::telemetry::ghl_call(None, started.elapsed(), None);
            // Status 0: no answer, as the status page counts it.
            tracing::info!(
                location_id,
                status = 0,
                latency_ms = started.elapsed().as_millis() as u64,
                "ghl call"
            );
            GhlError::unavailable("request failed", e.without_url())
        })?;
        taken.observe(response.headers());
        let status = response.status().as_u16();
        let remaining = header(response.headers(), "x-ratelimit-remaining");
        crate::telemetry::ghl_call(Some(status), started.elapsed(), remaining);
        // One line per call, with no ids beyond the location: a call GHL answered
        // is detail (its figures are metrics too), one it refused is news.
        let latency_ms = started.elapsed().as_millis() as u64;
        if response.status().is_success() {
            tracing::debug!(target: DETAIL, location_id, status, latency_ms, remaining, "ghl call");
        } else {
            tracing::info!(location_id, status, latency_ms, remaining, "ghl call");
        }
        if status == 429 {
            return Err(GhlError::RateLimited {
                retry_after_ms: header(response.headers(), "x-ratelimit-interval-milliseconds")
                    .unwrap_or(DEFAULT_RATE_WAIT_MS),
            });
        }
        let text = response
            .text()
            .await
            .map_err(|e| GhlError::unavailable("answer cut short", e.without_url()))?;
        // Some answers have no body (or no schema): read those as `null`.
        let text = if text.trim().is_empty() {
            "null"
        } else {
            &text
        };
        match status {
            200..=299 => serde_json::from_str(text).map_err(GhlError::unreadable),
            404 => Err(GhlError::NotFound),
            401 | 403 => Err(refused(status, text)),
            400 | 422 => Err(GhlError::Rejected {
                status,
                message: error_message(text),
            }),
            _ => Err(GhlError::unavailable(
                "server error",
                format!("GHL answered {status}: {}", error_message(text)),
            )),
        }
    }
}

impl<T> GhlClient<T> {
    /// Enrichment may spend `share` (0 to 1) of each location's budget; the rest
    /// is left to everything else ([`Budget`]).
    pub fn with_enrichment_share(mut self, share: f64) -> Self {
        self.budget = Arc::new(Budget::new(share));
        self
    }

    /// A contact read serves the jobs of that contact for `ttl` (zero: none).
    pub fn with_contact_cache(mut self, ttl: Duration) -> Self {
        self.contacts = Arc::new(ContactCache::new(ttl));
        self
    }

    /// Takes `used`'s request for `location_id` from the budget: at once, or after
    /// waiting out a window once (a function has a deadline); else, counted,
    /// `Reserved`, for the caller to try later.
    async fn admitted<'a>(
        &'a self,
        location_id: &'a str,
        used: Use,
    ) -> Result<Taken<'a>, GhlError> {
        let mut taken = self.budget.take(location_id, used);
        if let Err(wait) = &taken {
            crate::telemetry::ghl_budget_wait(used.name());
            if *wait <= MAX_WAIT {
                tokio::time::sleep(*wait).await;
                taken = self.budget.take(location_id, used);
            }
        }
        match taken {
            Ok(taken) => {
                crate::telemetry::ghl_budget_spent(used.name());
                Ok(taken)
            }
            Err(wait) => {
                tracing::info!(
                    location_id,
                    used = used.name(),
                    wait_ms = wait.as_millis() as u64,
                    "ghl call held back for the location's budget"
                );
                Err(GhlError::Reserved {
                    for_use: used,
                    retry_after_ms: wait.as_millis() as u64,
                })
            }
        }
    }
}

impl<T: TokenSource> GhlReader for GhlClient<T> {
    async fn contact(&self, location_id: &str, contact_id: &str) -> Result<Contact, GhlError> {
        #[derive(serde::Deserialize)]
        struct Wrapper {
            contact: Contact,
        }
        if let Some(kept) = self.contacts.get(location_id, contact_id) {
            crate::telemetry::ghl_read_saved();
            return Ok(kept);
        }
        let path = format!("/contacts/{}", id(contact_id)?);
        let at = (location_id, Use::Enrichment);
        let contact = self.get::<Wrapper>(at, &path).await?.contact;
        self.contacts.put(location_id, contact_id, &contact);
        Ok(contact)
    }

    fn forget(&self, location_id: &str, contact_id: &str, received: chrono::DateTime<chrono::Utc>) {
        self.contacts.forget(location_id, contact_id, received);
    }

    async fn related(
        &self,
        location_id: &str,
        contact_id: &str,
        related: Related,
    ) -> Result<Value, GhlError> {
        let path = format!("/contacts/{}/{}", id(contact_id)?, related.segment());
        let mut body: Value = self.get((location_id, Use::Enrichment), &path).await?;
        Ok(body
            .get_mut(related.key())
            .map(Value::take)
            .unwrap_or(Value::Array(Vec::new())))
    }

    async fn names(&self, location_id: &str) -> Result<super::names::LocationNames, GhlError> {
        self.location_names(location_id).await
    }

    async fn connected(&self, location_id: &str) -> Result<bool, GhlError> {
        self.tokens.connected(location_id).await
    }

    async fn installed(&self, location_id: &str, company_id: &str) -> Result<(), GhlError> {
        self.tokens.installed(location_id, company_id).await
    }

    async fn uninstalled(
        &self,
        location_id: Option<&str>,
        company_id: Option<&str>,
        sent_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), GhlError> {
        self.tokens
            .uninstalled(location_id, company_id, sent_at)
            .await
    }
}

/// A `401` or `403`: a token GHL does not take (expired, revoked: worth one
/// refresh), or one it takes but that may not do this (a missing scope: no
/// refresh helps, and none is spent on it).
fn refused(status: u16, body: &str) -> GhlError {
    let message = error_message(body);
    let lower = message.to_ascii_lowercase();
    let scope = [
        "scope",
        "authclass",
        "not authorized for",
        "not allowed to access",
    ]
    .iter()
    .any(|w| lower.contains(w));
    if status == 403 || scope {
        GhlError::Forbidden { status, message }
    } else {
        GhlError::Unauthorized
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refused_token_is_worth_a_refresh_and_a_missing_scope_is_named() {
        let invalid = r#"{"statusCode":401,"message":"Invalid token: access token is invalid","error":"Unauthorized"}"#;
        assert_eq!(refused(401, invalid), GhlError::Unauthorized);
        let scope = r#"{"statusCode":401,"message":"The token is not authorized for this scope."}"#;
        assert!(matches!(
            refused(401, scope),
            GhlError::Forbidden { status: 401, .. }
        ));
        let forbidden = r#"{"statusCode":403,"message":"Forbidden resource"}"#;
        let GhlError::Forbidden { message, .. } = refused(403, forbidden) else {
            panic!("forbidden")
        };
        assert_eq!(message, "Forbidden resource");
    }
}
