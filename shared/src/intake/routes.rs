//! The intake API's routes, for any HTTP front (API Gateway through `lambda_http`, or
//! `ghl-capi serve`): each front turns its request into a [`Request`] and writes the
//! [`Response`] back, so both answer exactly alike.
//!
//! - `POST /webhooks/ghl`: [`accept_webhook`].
//! - `POST /contacts/{contactId}/conversions`: [`accept_conversion`], with the API
//!   keys read from the secret store (cached by the store); closed when no secret
//!   is configured.
//! - `GET /oauth/callback`: the marketplace app's install ([`Install`]), answered
//!   with a page for the person installing.
//! - `GET /health`.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::conversion::{self, accept_conversion};
use super::webhook::{self, Accepted, accept_webhook};
use crate::ghl::install::{self, Install, Installed};
use crate::ghl::webhook::{ReplayWindow, SignatureHeaders, WebhookKeys};
use crate::ports::queue::Queue;
use crate::ports::secrets::SecretStore;

/// One HTTP request, as the routes need it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The query string, without `?`.
    pub query: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub signatures: SignatureHeaders<'a>,
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    /// The request as an HTTP front received it (`lambda_http` and `axum` both
    /// speak the `http` crate's types): the one place that knows which headers the
    /// routes read.
    pub fn from_http(
        method: &'a http::Method,
        uri: &'a http::Uri,
        headers: &'a http::HeaderMap,
        body: &'a [u8],
    ) -> Self {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        Request {
            method: method.as_str(),
            path: uri.path(),
            query: uri.query(),
            authorization: header("authorization"),
            signatures: SignatureHeaders {
                ghl: header("x-ghl-signature"),
                legacy: header("x-wh-signature"),
            },
            body,
        }
    }
}

/// The answer: a status and a JSON body (never a payload, a key or any PII).
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub body: Value,
    /// What to log and count: `accepted`, `ignored` or the rejection's code.
    pub outcome: &'static str,
    /// An HTML page to send instead of the JSON body (the install callback's).
    pub page: Option<String>,
}

impl Response {
    /// The `Content-Type` and the text to send: the page when there is one.
    pub fn content(&self) -> (&'static str, String) {
        match &self.page {
            Some(page) => ("text/html; charset=utf-8", page.clone()),
            None => ("application/json", self.body.to_string()),
        }
    }

    /// The answer as an HTTP response, for any front.
    pub fn to_http(&self) -> http::Response<String> {
        let (content_type, text) = self.content();
        let mut response = http::Response::new(text);
        *response.status_mut() = http::StatusCode::from_u16(self.status)
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        response
    }
}

/// The intake API over a queue, a secret store and the app's install step.
#[derive(Debug)]
pub struct Api<Q, S, I> {
    pub keys: WebhookKeys,
    pub window: ReplayWindow,
    pub queue: Q,
    pub secrets: S,
    /// The secret holding the conversions route's API keys.
    pub conversion_keys_secret: Option<String>,
    pub install: I,
}

fn answer(status: u16, body: Value, outcome: &'static str) -> Response {
    Response {
        status,
        body,
        outcome,
        page: None,
    }
}

impl<Q: Queue, S: SecretStore, I: Install> Api<Q, S, I> {
    /// Routes and answers one request, logging and counting it by outcome. The
    /// log line carries ids only: the route, the answer, and the webhook or event id.
    pub async fn handle(&self, request: Request<'_>, now: DateTime<Utc>) -> Response {
        let started = std::time::Instant::now();
        let response = self.route(request, now).await;
        crate::telemetry::request(response.outcome, response.status, started.elapsed());
        tracing::info!(
            method = request.method,
            path = request.path,
            status = response.status,
            outcome = response.outcome,
            webhook_id = response
                .body
                .get("webhookId")
                .and_then(serde_json::Value::as_str),
            event_id = response
                .body
                .get("eventId")
                .and_then(serde_json::Value::as_str),
            "request"
        );
        response
    }

    async fn route(&self, request: Request<'_>, now: DateTime<Utc>) -> Response {
        let path = request.path.trim_end_matches('/');
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        match (request.method, segments.as_slice()) {
            ("GET", ["health"]) => answer(200, json!({"status": "ok"}), "health"),
            ("GET", ["oauth", "callback"]) => self.installed(request, now).await,
            ("POST", ["webhooks", "ghl"]) => self.webhook(request, now).await,
            (_, ["contacts", "", "conversions"]) => {
                answer(404, json!({"error": "not_found"}), "not_found")
            }
            ("POST", ["contacts", contact_id, "conversions"]) => {
                self.conversion(contact_id, request, now).await
            }
            (
                _,
                ["health"]
                | ["webhooks", "ghl"]
                | ["contacts", _, "conversions"]
                | ["oauth", "callback"],
            ) => answer(
                405,
                json!({"error": "method_not_allowed"}),
                "method_not_allowed",
            ),
            _ => answer(404, json!({"error": "not_found"}), "not_found"),
        }
    }

    async fn installed(&self, request: Request<'_>, now: DateTime<Utc>) -> Response {
        let outcome = self
            .install
            .callback(request.query.unwrap_or_default(), now)
            .await;
        let (status, body, code) = match &outcome {
            Ok(Installed::Location { location_id }) => (
                200,
                json!({"status": "installed", "locationId": location_id}),
                "installed",
            ),
            Ok(Installed::Company {
                company_id,
                locations,
                ..
            }) => (
                200,
                json!({"status": "installed", "companyId": company_id, "locations": locations}),
                "installed",
            ),
            Err(e) => (
                e.status(),
                json!({"error": e.to_string()}),
                "install_failed",
            ),
        };
        Response {
            page: Some(install::page(&outcome)),
            ..answer(status, body, code)
        }
    }

    async fn webhook(&self, request: Request<'_>, now: DateTime<Utc>) -> Response {
        let outcome = accept_webhook(
            &self.keys,
            &self.window,
            &self.queue,
            request.signatures,
            request.body,
            now,
        )
        .await;
        let (status, body) = webhook::reply(&outcome);
        let code = match &outcome {
            Ok(Accepted::Queued { .. }) => "accepted",
            Ok(Accepted::Kept { .. }) => "accepted_unparsed",
            Ok(Accepted::Ignored { .. }) => "ignored",
            Err(e) => e.code(),
        };
        answer(status, body, code)
    }

    async fn conversion(
        &self,
        contact_id: &str,
        request: Request<'_>,
        now: DateTime<Utc>,
    ) -> Response {
        let Some(secret) = &self.conversion_keys_secret else {
            return answer(
                404,
                json!({"error": "the conversions route is not configured (CONVERSION_API_KEYS_SECRET)"}),
                "conversions_closed",
            );
        };
        let keys = match self.secrets.get(secret).await {
            Ok(secret) => secret.keys(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the conversions route's API keys");
                return answer(
                    503,
                    json!({"error": "API keys unavailable; retry"}),
                    "keys_unavailable",
                );
            }
        };
        let outcome = accept_conversion(
            &keys,
            &self.queue,
            contact_id,
            request.authorization,
            request.body,
            now,
        )
        .await;
        let (status, body) = conversion::reply(&outcome);
        let code = match &outcome {
            Ok(_) => "accepted",
            Err(e) => e.code(),
        };
        answer(status, body, code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::queue::MemoryQueue;
    use crate::ports::secrets::{Secret, SecretError};

    struct Keys(Option<&'static str>);

    impl SecretStore for Keys {
        async fn get(&self, name: &str) -> Result<Secret, SecretError> {
            self.0
                .map(Secret::new)
                .ok_or_else(|| SecretError::unavailable(name, "down"))
        }
        async fn fresh(&self, name: &str) -> Result<Secret, SecretError> {
            self.get(name).await
        }
    }

    type TestApi = Api<MemoryQueue, Keys, crate::ghl::install::NoInstall>;

    fn api(keys: Option<&'static str>, secret: Option<&str>) -> TestApi {
        Api {
            keys: WebhookKeys::ghl_published(),
            window: ReplayWindow::default(),
            queue: MemoryQueue::default(),
            secrets: Keys(keys),
            conversion_keys_secret: secret.map(str::to_owned),
            install: crate::ghl::install::NoInstall,
        }
    }

    fn request<'a>(method: &'a str, path: &'a str, body: &'a [u8]) -> Request<'a> {
        Request {
            method,
            path,
            query: None,
            authorization: Some("Bearer k1"),
            signatures: SignatureHeaders::default(),
            body,
        }
    }

    async fn status(api: &TestApi, method: &str, path: &str, body: &[u8]) -> u16 {
        api.handle(request(method, path, body), Utc::now())
            .await
            .status
    }

    #[tokio::test]
    async fn routes_answer_by_method_and_path() {
        let api = api(Some(r#"["k1"]"#), Some("keys"));
        assert_eq!(status(&api, "GET", "/health", b"").await, 200);
        assert_eq!(status(&api, "GET", "/health/", b"").await, 200);
        assert_eq!(status(&api, "GET", "/webhooks/ghl", b"").await, 405);
        assert_eq!(
            status(&api, "DELETE", "/contacts/c1/conversions", b"").await,
            405
        );
        assert_eq!(status(&api, "POST", "/nowhere", b"").await, 404);
        assert_eq!(
            status(&api, "POST", "/contacts//conversions", b"").await,
            404
        );
        assert_eq!(status(&api, "POST", "/oauth/callback", b"").await, 405);
        let closed = api
            .handle(request("GET", "/oauth/callback", b""), Utc::now())
            .await;
        assert_eq!(closed.status, 404, "no app configured");
        assert!(closed.page.is_some_and(|p| p.contains("GHL_APP_SECRET")));
        let unsigned = api
            .handle(request("POST", "/webhooks/ghl", b"{}"), Utc::now())
            .await;
        assert_eq!((unsigned.status, unsigned.outcome), (401, "bad_signature"));
        let body = format!(
            r#"{{"locationId":"loc","eventType":"Lead","timestamp":"{}"}}"#,
            Utc::now().to_rfc3339()
        );
        let posted = api
            .handle(
                request("POST", "/contacts/c1/conversions", body.as_bytes()),
                Utc::now(),
            )
            .await;
        assert_eq!((posted.status, posted.outcome), (202, "accepted"));
        assert_eq!(api.queue.sent().len(), 1);
    }

    #[tokio::test]
    async fn the_conversions_route_is_closed_without_keys_and_waits_out_a_secret_outage() {
        let body = br#"{"locationId":"loc","eventType":"Lead","timestamp":"2026-01-01T00:00:00Z"}"#;
        let closed = api(Some("k1"), None);
        assert_eq!(
            status(&closed, "POST", "/contacts/c1/conversions", body).await,
            404
        );
        let down = api(None, Some("keys"));
        assert_eq!(
            status(&down, "POST", "/contacts/c1/conversions", body).await,
            503
        );
        assert!(closed.queue.sent().is_empty() && down.queue.sent().is_empty());
    }
}
