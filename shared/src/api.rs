//! The intake API's routes, for any HTTP front (API Gateway through `lambda_http`, or
//! `ghl-capi serve`): each front turns its request into a [`Request`] and writes the
//! [`Response`] back, so both answer exactly alike.
//!
//! - `POST /webhooks/ghl`: [`accept_webhook`].
//! - `POST /contacts/{contactId}/conversions`: [`accept_conversion`], with the API
//!   keys read from the secret store (cached by the store); closed when no secret
//!   is configured.
//! - `GET /health`.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::conversion_intake::{self, accept_conversion};
use crate::ghl::webhook::{ReplayWindow, SignatureHeaders, WebhookKeys};
use crate::intake::{self, Accepted, accept_webhook};
use crate::queue::Queue;
use crate::secrets::SecretStore;

/// One HTTP request, as the routes need it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub authorization: Option<&'a str>,
    pub signatures: SignatureHeaders<'a>,
    pub body: &'a [u8],
}

/// The answer: a status and a JSON body (never a payload, a key or any PII).
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub body: Value,
    /// What to log and count: `accepted`, `ignored` or the rejection's code.
    pub outcome: &'static str,
}

/// The intake API over a queue and a secret store.
#[derive(Debug)]
pub struct Api<Q, S> {
    pub keys: WebhookKeys,
    pub window: ReplayWindow,
    pub queue: Q,
    pub secrets: S,
    /// The secret holding the conversions route's API keys.
    pub conversion_keys_secret: Option<String>,
}

fn answer(status: u16, body: Value, outcome: &'static str) -> Response {
    Response {
        status,
        body,
        outcome,
    }
}

impl<Q: Queue, S: SecretStore> Api<Q, S> {
    /// Routes and answers one request.
    pub async fn handle(&self, request: Request<'_>, now: DateTime<Utc>) -> Response {
        let path = request.path.trim_end_matches('/');
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        match (request.method, segments.as_slice()) {
            ("GET", ["health"]) => answer(200, json!({"status": "ok"}), "health"),
            ("POST", ["webhooks", "ghl"]) => self.webhook(request, now).await,
            ("POST", ["contacts", contact_id, "conversions"]) if !contact_id.is_empty() => {
                self.conversion(contact_id, request, now).await
            }
            (_, ["health"] | ["webhooks", "ghl"] | ["contacts", _, "conversions"]) => answer(
                405,
                json!({"error": "method_not_allowed"}),
                "method_not_allowed",
            ),
            _ => answer(404, json!({"error": "not_found"}), "not_found"),
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
        let (status, body) = intake::reply(&outcome);
        let code = match &outcome {
            Ok(Accepted::Queued { .. }) => "accepted",
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
            Err(_) => {
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
        let (status, body) = conversion_intake::reply(&outcome);
        let code = match &outcome {
            Ok(_) => "accepted",
            Err(e) => e.code(),
        };
        answer(status, body, code)
    }
}
