//! The intake API's routes, for any HTTP front (API Gateway through `lambda_http`, or
//! `ghl-capi serve`): each front turns its request into a [`Request`] and writes the
//! [`Response`] back, so both answer exactly alike.
//!
//! - `POST /webhooks/ghl`: [`accept_webhook`].
//! - `POST /contacts/{contactId}/conversions` and `POST /workflows/ghl` (or
//!   `/workflows/ghl/<key>`, the key in the URL) ([`keyed_routes`]): with the API
//!   keys read from the secret store (cached by the store), closed when no secret
//!   is configured.
//! - `GET /oauth/callback`: the marketplace app's install ([`Install`]), answered
//!   with a page for the person installing.
//! - `GET /health`.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::MAX_BODY_BYTES;
use super::keys::Credentials;
use super::webhook::{self, Accepted, accept_webhook};
use crate::error::chain;
use crate::ghl::install::{self, Install, Installed};
use crate::ghl::webhook::{AppIds, ReplayWindow, SignatureHeaders, WebhookKeys};
use crate::ports::queue::Queue;
use crate::ports::secrets::SecretStore;

/// The workflow route with the key as its last segment, up to the key.
const WORKFLOW_KEYED: &str = "/workflows/ghl/";

/// One HTTP request, as the routes need it. Its `Debug` shows neither the API key
/// it carries nor the body.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The query string, without `?`.
    pub query: Option<&'a str>,
    pub credentials: Credentials<'a>,
    pub signatures: SignatureHeaders<'a>,
    pub body: &'a [u8],
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("credentials", &self.credentials)
            .field("signatures", &self.signatures)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

impl<'a> Request<'a> {
    /// The path as logs show it: a workflow call's key, when the URL carries it
    /// (`/workflows/ghl/<key>`), is never written down.
    pub fn shown_path(&self) -> std::borrow::Cow<'a, str> {
        match self.path.strip_prefix(WORKFLOW_KEYED) {
            Some(rest) if !rest.is_empty() => format!("{WORKFLOW_KEYED}{{key}}").into(),
            _ => self.path.into(),
        }
    }

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
            credentials: Credentials {
                authorization: header("authorization"),
                api_key: header("x-api-key"),
                ..Default::default()
            },
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
    /// A verified webhook's `type`, for the request's log line.
    pub kind: Option<String>,
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
    /// Our GHL apps: other apps' webhooks are ignored.
    pub apps: AppIds,
    pub queue: Q,
    pub secrets: S,
    /// The secret holding the conversions route's API keys.
    pub conversion_keys_secret: Option<String>,
    /// `ALLOW_UNSCOPED_KEYS`: keys without locations may post for every location
    /// (else they post nowhere).
    pub allow_unscoped_keys: bool,
    pub install: I,
    /// Whether the keys without locations were named in a warning yet.
    pub warned_unscoped: std::sync::atomic::AtomicBool,
}

/// The `webhookId` a body names, read from its top level alone; `None` for any
/// body that is not a JSON object with one, or is larger than a webhook (an
/// unsigned flood costs no parsing).
fn claimed_webhook_id(body: &[u8]) -> Option<String> {
    const PEEKED: usize = 16 * 1024;
    #[derive(serde::Deserialize)]
    struct Claim {
        #[serde(rename = "webhookId")]
        webhook_id: Option<String>,
    }
    if body.first() != Some(&b'{') || body.len() > PEEKED {
        return None;
    }
    serde_json::from_slice::<Claim>(body).ok()?.webhook_id
}

fn answer(status: u16, body: Value, outcome: &'static str) -> Response {
    Response {
        status,
        body,
        outcome,
        page: None,
        kind: None,
    }
}

impl<Q: Queue, S: SecretStore, I: Install> Api<Q, S, I> {
    /// Routes and answers one request, logging and counting it by outcome. The
    /// log line carries ids only: the route, the answer, and the webhook or event id.
    pub async fn handle(&self, request: Request<'_>, now: DateTime<Utc>) -> Response {
        let started = std::time::Instant::now();
        let response = match self.refuse_early(&request) {
            Some(refused) => refused,
            None => self.route(request, now).await,
        };
        Self::logged(&request, response, started)
    }

    /// The answer to a request whose body was over [`MAX_BODY_BYTES`] (a front
    /// that stops reading there), logged and counted as any other.
    pub fn too_large(&self, request: &Request<'_>) -> Response {
        let refused = answer(
            413,
            json!({"error": "too_large", "message": format!("the body is over the {MAX_BODY_BYTES}-byte limit")}),
            "too_large",
        );
        Self::logged(request, refused, std::time::Instant::now())
    }

    fn logged(request: &Request<'_>, response: Response, started: std::time::Instant) -> Response {
        crate::telemetry::request(response.outcome, response.status, started.elapsed());
        let answered = response
            .body
            .get("webhookId")
            .and_then(serde_json::Value::as_str);
        // A refused delivery's id as it claims it: an operator looks for it by that.
        let claimed = answered
            .is_none()
            .then(|| claimed_webhook_id(request.body))
            .flatten();
        tracing::info!(
            method = request.method,
            path = %request.shown_path(),
            status = response.status,
            outcome = response.outcome,
            webhook_id = answered.or(claimed.as_deref()),
            kind = response.kind,
            event_id = response
                .body
                .get("eventId")
                .and_then(serde_json::Value::as_str),
            "request"
        );
        response
    }

    /// The answer a request gets from its head alone, if any: a webhook with no
    /// signature header at all is no GHL delivery, and with no marketplace app
    /// configured no webhook is ours; both are refused before the body is read (a
    /// front that streams bodies asks this first).
    pub fn refuse_early(&self, request: &Request<'_>) -> Option<Response> {
        let webhook =
            request.method == "POST" && request.path.trim_end_matches('/') == "/webhooks/ghl";
        if !webhook {
            return None;
        }
        if request.signatures.ghl.is_none() && request.signatures.legacy.is_none() {
            return Some(answer(
                401,
                json!({"error": "no_signature", "message": "no x-ghl-signature header: not a GHL delivery"}),
                "no_signature",
            ));
        }
        self.apps.is_empty().then(|| {
            let refused = webhook::IntakeError::NoApp;
            tracing::warn!(reason = %refused, "a signed webhook refused");
            answer(
                refused.status(),
                json!({"error": refused.code(), "message": refused.to_string()}),
                refused.code(),
            )
        })
    }

    async fn route(&self, request: Request<'_>, now: DateTime<Utc>) -> Response {
        let path = request.path.trim_end_matches('/');
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        match (request.method, segments.as_slice()) {
            ("GET", ["health"]) => answer(200, json!({"status": "ok"}), "health"),
            ("GET", ["oauth", "callback"]) => self.installed(request, now).await,
            ("POST", ["webhooks", "ghl"]) => self.webhook(request, now).await,
            ("POST", ["workflows", "ghl"]) => self.workflow(request, now).await,
            // GHL's plain Webhook action may offer no header: the key in the URL.
            ("POST", ["workflows", "ghl", key]) => {
                let credentials = Credentials {
                    in_path: Some(key),
                    ..request.credentials
                };
                self.workflow(
                    Request {
                        credentials,
                        ..request
                    },
                    now,
                )
                .await
            }
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
                | ["workflows", "ghl"]
                | ["workflows", "ghl", _]
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
            &self.apps,
            &self.queue,
            request.signatures,
            request.body,
            now,
        )
        .await;
        let (status, body) = webhook::reply(&outcome);
        let kind = match &outcome {
            Ok(
                Accepted::Queued { kind, .. }
                | Accepted::Kept { kind, .. }
                | Accepted::Repeat { kind, .. }
                | Accepted::Stale { kind, .. }
                | Accepted::Ignored { kind },
            ) => Some(kind.clone()),
            _ => None,
        };
        let code = match &outcome {
            Ok(Accepted::Queued { .. }) => "accepted",
            Ok(Accepted::Kept { .. }) => "accepted_unparsed",
            Ok(Accepted::Repeat { .. }) => "duplicate",
            Ok(Accepted::Stale { .. }) => "stale_delivery",
            Ok(Accepted::Ignored { .. }) => "ignored",
            Ok(Accepted::OtherApp { app_id }) if app_id.is_empty() => {
                tracing::warn!("a webhook naming no GHL app: not ours, ignored");
                "other_app"
            }
            Ok(Accepted::OtherApp { app_id }) => {
                tracing::warn!(app_id, "a webhook for another GHL app: ignored");
                "other_app"
            }
            Err(e @ webhook::IntakeError::NoApp) => {
                tracing::warn!(reason = %e, "a signed webhook refused");
                e.code()
            }
            Err(e @ webhook::IntakeError::Queue(_)) => {
                tracing::error!(error = %chain(e), "could not queue a webhook; GHL is asked to send it again");
                e.code()
            }
            Err(e) => e.code(),
        };
        Response {
            kind,
            ..answer(status, body, code)
        }
    }
}

mod keyed_routes;

#[cfg(test)]
mod tests;
