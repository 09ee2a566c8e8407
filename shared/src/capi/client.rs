//! The Conversions API over HTTPS: the real [`EventsApi`].

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::graph::appsecret_proof;
use super::{EventRequest, ServerEvent};
use crate::dispatch::EventsApi;
use crate::mapping::{Mapping, TokenRef};
use crate::secrets::{EnvSecrets, SecretError, SecretStore};

/// Graph API version used unless configured (`GRAPH_API_VERSION`).
pub const DEFAULT_GRAPH_VERSION: &str = "v25.0";

/// A pixel's credentials. `Debug` never shows them.
#[derive(Clone)]
pub struct PixelToken {
    pub access_token: String,
    /// With it, every request carries `appsecret_proof`.
    pub app_secret: Option<String>,
}

impl fmt::Debug for PixelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PixelToken")
            .field("access_token", &"<redacted>")
            .field(
                "app_secret",
                &self.app_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The credentials of each of the mapping's pixels, by dataset id, read where the
/// mapping says: a secret (in `store`) or an environment variable. Each holds the
/// access token alone, or `{"access_token": …, "app_secret": …}`. A pixel whose
/// token cannot be read is left out and returned with why, so the others still work.
pub async fn pixel_tokens(
    mapping: &Mapping,
    store: &impl SecretStore,
) -> (HashMap<String, PixelToken>, Vec<(String, SecretError)>) {
    let mut tokens = HashMap::new();
    let mut missing = Vec::new();
    for pixel in &mapping.pixels {
        let secret = match &pixel.access_token {
            TokenRef::Secret(name) => store.get(name).await,
            TokenRef::Env(var) => EnvSecrets.get(var).await,
        };
        let token = secret.and_then(|s| {
            let access_token = s.token().ok_or_else(|| SecretError::Unavailable {
                name: pixel.name.clone(),
                reason: "it holds no access_token".into(),
            })?;
            Ok(PixelToken {
                access_token: access_token.expose().to_owned(),
                app_secret: s.field("app_secret").map(|a| a.expose().to_owned()),
            })
        });
        match token {
            Ok(token) => {
                tokens.insert(pixel.dataset_id.clone(), token);
            }
            Err(e) => missing.push((pixel.name.clone(), e)),
        }
    }
    (tokens, missing)
}

/// Posts events to `{base_url}/{version}/{dataset_id}/events`.
#[derive(Debug, Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    base_url: String,
    version: String,
    tokens: HashMap<String, PixelToken>,
}

/// The request body: the events request plus credentials, in the body rather than
/// the URL so they never reach access logs.
#[derive(Serialize)]
struct Body<'a> {
    data: &'a [ServerEvent],
    #[serde(skip_serializing_if = "Option::is_none")]
    test_event_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partner_agent: Option<&'a str>,
    access_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    appsecret_proof: Option<String>,
}

impl GraphClient {
    /// A client for `base_url` (`https://graph.facebook.com`, or a mock in tests)
    /// with a token per dataset id. Requests time out after `timeout`.
    pub fn new(
        base_url: &str,
        version: &str,
        tokens: HashMap<String, PixelToken>,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = crate::http::client(timeout)?;
        Ok(GraphClient {
            http,
            base_url: crate::http::base(base_url),
            version: version.to_owned(),
            tokens,
        })
    }
}

impl GraphClient {
    /// Whether a token is configured for `dataset_id`.
    pub fn has_token(&self, dataset_id: &str) -> bool {
        self.tokens.contains_key(dataset_id)
    }
}

impl EventsApi for GraphClient {
    async fn post(
        &self,
        dataset_id: &str,
        request: &EventRequest,
    ) -> Result<(u16, String), String> {
        let token = self
            .tokens
            .get(dataset_id)
            .ok_or_else(|| format!("no access token is configured for dataset {dataset_id}"))?;
        let body = Body {
            data: &request.data,
            test_event_code: request.test_event_code.as_deref(),
            partner_agent: request.partner_agent.as_deref(),
            access_token: &token.access_token,
            appsecret_proof: token
                .app_secret
                .as_deref()
                .map(|s| appsecret_proof(s, &token.access_token)),
        };
        let url = format!("{}/{}/{dataset_id}/events", self.base_url, self.version);
        let started = std::time::Instant::now();
        let response = self
            .http
            .post(url)
            .json(&body)
            .send()
            .await
            // Timeouts and connection failures say nothing about the events: retry.
            .map_err(|e| {
                crate::telemetry::graph_call(None, started.elapsed());
                format!("could not reach the Graph API: {}", e.without_url())
            })?;
        let status = response.status().as_u16();
        crate::telemetry::graph_call(Some(status), started.elapsed());
        tracing::info!(
            dataset_id,
            status,
            events = request.data.len(),
            latency_ms = started.elapsed().as_millis() as u64,
            "graph request"
        );
        let text = response
            .text()
            .await
            .map_err(|e| format!("Graph API answer cut short: {}", e.without_url()))?;
        Ok((status, text))
    }
}
