//! The Conversions API over HTTPS, and the port dispatch sends through
//! ([`EventsApi`]): one request per batch, its answer as Meta gave it, or a typed
//! transport failure.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde::Serialize;

use super::answer::appsecret_proof;
use super::audience::{Session, UsersRequest};
use super::payload::Payload;
use super::replace::{ReplaceRequest, ReplaceSession};
use super::{EventRequest, ServerEvent};

/// The API version used unless configured (`GRAPH_API_VERSION`).
pub const DEFAULT_API_VERSION: &str = "v26.0";
/// The header Meta sets on a call to a version it auto-upgraded (an expired one).
const VERSION_WARNING: &str = "x-ad-api-version-warning";
/// Meta's Graph API, where the Conversions API lives.
pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";

/// Meta's answer to one request, as given: what it means is [`super::answer`]'s to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// A request that got no answer from Meta. Nothing is known of its events, so
/// they are sent again.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// For a pixel's dataset or an audience, by its id.
    #[error("no access token is configured for {id}")]
    NoToken { id: String },
    #[error("could not reach the Conversions API: {0}")]
    Unreachable(#[source] reqwest::Error),
    #[error("the Conversions API's answer was cut short: {0}")]
    CutShort(#[source] reqwest::Error),
    #[error("could not record the request: {0}")]
    Io(#[source] std::io::Error),
}

/// The Conversions API endpoint, as a port ([`CapiClient`] on AWS and locally,
/// fakes in tests).
pub trait EventsApi: Send + Sync {
    /// Posts one request for one pixel (dataset).
    fn post(
        &self,
        dataset_id: &str,
        request: &EventRequest,
    ) -> impl Future<Output = Result<Answer, TransportError>> + Send;

    /// Meta refused `dataset_id`'s requests as a whole (its token, most likely):
    /// read its credentials again before the next request.
    fn token_refused(&self, dataset_id: &str) {
        let _ = dataset_id;
    }
}

/// The Custom Audiences `/users` edge, as a port.
pub trait AudiencesApi: Send + Sync {
    /// Adds or removes one request's rows of one audience.
    fn users(
        &self,
        audience_id: &str,
        request: &UsersRequest,
    ) -> impl Future<Output = Result<Answer, TransportError>> + Send;

    /// Reads the audience's name and `operation_status` (`ghl-capi verify`).
    fn audience(
        &self,
        audience_id: &str,
    ) -> impl Future<Output = Result<Answer, TransportError>> + Send;

    /// Sends one batch of a replace of the audience's whole list (`usersreplace`).
    fn users_replace(
        &self,
        audience_id: &str,
        request: &ReplaceRequest,
    ) -> impl Future<Output = Result<Answer, TransportError>> + Send;

    /// Lists the audience's upload sessions and their status.
    fn sessions(
        &self,
        audience_id: &str,
    ) -> impl Future<Output = Result<Answer, TransportError>> + Send;

    /// Meta refused the audience's token: read it again before the next request.
    fn audience_token_refused(&self, audience_id: &str) {
        let _ = audience_id;
    }
}

/// Meta's Dataset Quality API, as a port (`ghl-capi verify`).
pub trait DatasetQualityApi: Send + Sync {
    /// Meta's match-quality figures for `dataset_id`'s events sent as
    /// [`PARTNER_AGENT`], with the pixel's token.
    fn dataset_quality(
        &self,
        dataset_id: &str,
    ) -> impl Future<Output = Result<Answer, TransportError>> + Send;
}

/// The Dataset Quality API's fields asked for (`reference/meta-capi.md` §5.2).
const DATASET_QUALITY_FIELDS: &str = "web{event_name,event_match_quality{composite_score,match_key_feedback{identifier,coverage}},event_coverage{percentage}}";

/// What every events request names as its sender (`partner_agent`): Meta asks
/// partners for a stable one, and its Dataset Quality API filters by it.
pub const PARTNER_AGENT: &str = "ghl-capi";

/// Where a client gets each pixel's (and audience's) credentials by its id.
pub trait PixelTokens: Send + Sync {
    /// The credentials to use now; `None` when none are stored.
    fn token(&self, dataset_id: &str) -> impl Future<Output = Option<PixelToken>> + Send;
    /// Meta refused them: the next [`PixelTokens::token`] reads them anew.
    fn refused(&self, dataset_id: &str);
}

/// Credentials fixed for the client's life (a one-off check, tests).
impl PixelTokens for HashMap<String, PixelToken> {
    async fn token(&self, dataset_id: &str) -> Option<PixelToken> {
        self.get(dataset_id).cloned()
    }

    fn refused(&self, _: &str) {}
}

/// A pixel's credentials. `Debug` never shows them.
#[derive(Clone)]
pub struct PixelToken {
    pub access_token: String,
    /// With it, every request carries `appsecret_proof`.
    pub app_secret: Option<String>,
}

impl PixelToken {
    /// `appsecret_proof`, when the app secret is known.
    fn proof(&self) -> Option<String> {
        self.app_secret
            .as_deref()
            .map(|s| appsecret_proof(s, &self.access_token))
    }
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

/// Posts events to `{base_url}/{version}/{dataset_id}/events`, with each pixel's
/// credentials from `T`.
#[derive(Debug, Clone)]
pub struct CapiClient<T = HashMap<String, PixelToken>> {
    http: reqwest::Client,
    base_url: String,
    version: String,
    tokens: T,
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

impl<T: PixelTokens> CapiClient<T> {
    /// A client for `base_url` (`https://graph.facebook.com`, or a mock in tests)
    /// with each pixel's token from `tokens`. Requests time out after `timeout`.
    pub fn new(
        base_url: &str,
        version: &str,
        tokens: T,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = crate::http::client(timeout)?;
        Ok(CapiClient {
            http,
            base_url: crate::http::base(base_url),
            version: version.to_owned(),
            tokens,
        })
    }

    /// Where its credentials come from.
    pub fn tokens(&self) -> &T {
        &self.tokens
    }
}

/// The `/users` body: the payload, the session if any, credentials.
#[derive(Serialize)]
struct UsersBody<'a> {
    payload: Payload<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<Session>,
    access_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    appsecret_proof: Option<String>,
}

impl<T: PixelTokens> CapiClient<T> {
    async fn credentials(&self, id: &str) -> Result<PixelToken, TransportError> {
        self.tokens
            .token(id)
            .await
            .ok_or_else(|| TransportError::NoToken { id: id.to_owned() })
    }

    /// Sends `request` and reads Meta's answer, timing it as a Graph call.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Answer, TransportError> {
        let started = std::time::Instant::now();
        let response = request
            .send()
            .await
            // Timeouts and connection failures say nothing about the data: retry.
            .map_err(|e| {
                crate::telemetry::capi_call(None, started.elapsed());
                TransportError::Unreachable(e.without_url())
            })?;
        let status = response.status().as_u16();
        crate::telemetry::capi_call(Some(status), started.elapsed());
        let warning = response
            .headers()
            .get(VERSION_WARNING)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .text()
            .await
            .map_err(|e| TransportError::CutShort(e.without_url()))?;
        if let Some(flagged) = super::answer::version_trouble(warning.as_deref(), status, &body) {
            // A version's sunset must never be found out by lost events: said at
            // once, counted and alarmed (GraphVersionAlarm).
            tracing::warn!(
                alert = "graph_version",
                version = self.version,
                flagged,
                "Meta flags the Graph API version: set GRAPH_API_VERSION to a current one"
            );
            crate::telemetry::graph_version_flagged();
        }
        Ok(Answer { status, body })
    }
}

/// The `usersreplace` body: the payload, the session, credentials.
#[derive(Serialize)]
struct ReplaceBody<'a> {
    payload: Payload<'a>,
    session: ReplaceSession,
    access_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    appsecret_proof: Option<String>,
}

impl<T: PixelTokens> CapiClient<T> {
    /// `GET {base}/{version}/{audience_id}{edge}?fields=…`, the token in a header,
    /// never in the URL (access logs keep URLs).
    async fn read(
        &self,
        audience_id: &str,
        edge: &str,
        fields: &str,
    ) -> Result<Answer, TransportError> {
        let path = format!("{audience_id}{edge}");
        self.get(audience_id, &path, &[("fields", fields)]).await
    }

    /// `GET {base}/{version}/{path}?{query}` with the credentials of `id` (a
    /// pixel's dataset or an audience).
    async fn get(
        &self,
        id: &str,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Answer, TransportError> {
        let token = self.credentials(id).await?;
        let url = format!("{}/{}/{path}", self.base_url, self.version);
        let mut query: Vec<(&str, String)> =
            query.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        query.extend(token.proof().map(|proof| ("appsecret_proof", proof)));
        let request = self
            .http
            .get(url)
            .bearer_auth(&token.access_token)
            .query(&query);
        self.send(request).await
    }
}

impl<T: PixelTokens> AudiencesApi for CapiClient<T> {
    async fn audience(&self, audience_id: &str) -> Result<Answer, TransportError> {
        self.read(audience_id, "", "name,operation_status").await
    }

    async fn sessions(&self, audience_id: &str) -> Result<Answer, TransportError> {
        let fields = "session_id,stage,progress,num_received,num_matched,num_invalid_entries,start_time,end_time";
        self.read(audience_id, "/sessions", fields).await
    }

    async fn users_replace(
        &self,
        audience_id: &str,
        request: &ReplaceRequest,
    ) -> Result<Answer, TransportError> {
        let token = self.credentials(audience_id).await?;
        let body = ReplaceBody {
            payload: request.payload(),
            session: request.session,
            access_token: &token.access_token,
            appsecret_proof: token.proof(),
        };
        let url = format!(
            "{}/{}/{audience_id}/usersreplace",
            self.base_url, self.version
        );
        let started = std::time::Instant::now();
        let answer = self.send(self.http.post(url).json(&body)).await?;
        tracing::info!(
            audience_id,
            status = answer.status,
            session_id = request.session.session_id,
            batch_seq = request.session.batch_seq,
            last = request.session.last_batch_flag,
            rows = request.rows.len(),
            latency_ms = started.elapsed().as_millis() as u64,
            "audience replace request"
        );
        Ok(answer)
    }

    fn audience_token_refused(&self, audience_id: &str) {
        self.tokens.refused(audience_id);
    }

    async fn users(
        &self,
        audience_id: &str,
        request: &UsersRequest,
    ) -> Result<Answer, TransportError> {
        let token = self.credentials(audience_id).await?;
        let body = UsersBody {
            payload: request.payload(),
            session: request.session,
            access_token: &token.access_token,
            appsecret_proof: token.proof(),
        };
        let url = format!("{}/{}/{audience_id}/users", self.base_url, self.version);
        let http = match request.operation {
            super::audience::Operation::Add => self.http.post(url),
            super::audience::Operation::Remove => self.http.delete(url),
        };
        let started = std::time::Instant::now();
        let answer = self.send(http.json(&body)).await?;
        tracing::info!(
            audience_id,
            status = answer.status,
            operation = request.operation.name(),
            rows = request.rows.len(),
            latency_ms = started.elapsed().as_millis() as u64,
            "audience request"
        );
        Ok(answer)
    }
}

impl<T: PixelTokens> DatasetQualityApi for CapiClient<T> {
    async fn dataset_quality(&self, dataset_id: &str) -> Result<Answer, TransportError> {
        let query = [
            ("dataset_id", dataset_id),
            ("agent_name", PARTNER_AGENT),
            ("fields", DATASET_QUALITY_FIELDS),
        ];
        self.get(dataset_id, "dataset_quality", &query).await
    }
}

impl<T: PixelTokens> EventsApi for CapiClient<T> {
    fn token_refused(&self, dataset_id: &str) {
        self.tokens.refused(dataset_id);
    }

    async fn post(
        &self,
        dataset_id: &str,
        request: &EventRequest,
    ) -> Result<Answer, TransportError> {
        let token = self.credentials(dataset_id).await?;
        let body = Body {
            data: &request.data,
            test_event_code: request.test_event_code.as_deref(),
            partner_agent: request.partner_agent.as_deref(),
            access_token: &token.access_token,
            appsecret_proof: token.proof(),
        };
        let url = format!("{}/{}/{dataset_id}/events", self.base_url, self.version);
        let started = std::time::Instant::now();
        let answer = self.send(self.http.post(url).json(&body)).await;
        // Status 0: no answer (unreachable, timed out, cut short).
        tracing::info!(
            dataset_id,
            status = answer.as_ref().map_or(0, |a| a.status),
            events = request.data.len(),
            latency_ms = started.elapsed().as_millis() as u64,
            "capi request"
        );
        answer
    }
}
