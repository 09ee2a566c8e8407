//! Webhook intake: verify, validate, enqueue, answer in GHL's terms.
//!
//! Failure policy, in one place. GHL retries a delivery only when it gets `429`, so:
//! - a wrong or missing signature, or a delivery outside the replay window, is `401`
//!   and never queued (not retried: it cannot become valid);
//! - a body that is not a webhook is `400` naming the problem;
//! - a body over [`MAX_BODY_BYTES`] is `413`;
//! - a `type` we do not model is `200` and not queued (counted by the caller);
//! - a failed enqueue is `429`, never `5xx`, so GHL delivers it again;
//! - otherwise the verified bytes are queued for enrichment, and only then `200`.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::MAX_BODY_BYTES;
use crate::ghl::webhook::{
    ParseError, ReplayError, ReplayWindow, SignatureError, SignatureHeaders, Webhook, WebhookKeys,
    idempotency_key,
};
use crate::jobs::{EnrichJob, group_id};
use crate::ports::queue::{Outgoing, Queue, QueueError};

/// Why a delivery was not accepted, with the answer it gets.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("signature rejected: {0}")]
    Signature(#[from] SignatureError),
    #[error("delivery refused: {0}")]
    Replay(#[from] ReplayError),
    #[error("{0}")]
    Malformed(#[from] ParseError),
    #[error("body of {size} bytes is over the {MAX_BODY_BYTES}-byte limit")]
    TooLarge { size: usize },
    #[error("could not queue the webhook; GHL will retry it")]
    Queue(#[source] QueueError),
}

impl IntakeError {
    /// The HTTP status GHL gets.
    pub fn status(&self) -> u16 {
        match self {
            IntakeError::Signature(_) | IntakeError::Replay(_) => 401,
            IntakeError::Malformed(_) => 400,
            IntakeError::TooLarge { .. } => 413,
            IntakeError::Queue(_) => 429,
        }
    }

    /// A stable name for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            IntakeError::Signature(_) => "bad_signature",
            IntakeError::Replay(_) => "outside_replay_window",
            IntakeError::Malformed(_) => "malformed",
            IntakeError::TooLarge { .. } => "too_large",
            IntakeError::Queue(_) => "enqueue_failed",
        }
    }
}

/// What happened to an accepted delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Queued for enrichment under this idempotency key.
    Queued { key: String, kind: String },
    /// A `type` we do not model: acknowledged, not queued.
    Ignored { kind: String },
}

/// The answer to a delivery: status and JSON body (never the payload or any PII).
pub fn reply(outcome: &Result<Accepted, IntakeError>) -> (u16, Value) {
    match outcome {
        Ok(Accepted::Queued { key, .. }) => (200, json!({"status": "accepted", "webhookId": key})),
        Ok(Accepted::Ignored { kind }) => (200, json!({"status": "ignored", "type": kind})),
        Err(e) => (
            e.status(),
            json!({"error": e.code(), "message": e.to_string()}),
        ),
    }
}

/// Checks one delivery and queues it. `body` is the raw request body, exactly as
/// received; nothing parses it before its signature is checked.
pub async fn accept_webhook(
    keys: &WebhookKeys,
    window: &ReplayWindow,
    queue: &impl Queue,
    headers: SignatureHeaders<'_>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Accepted, IntakeError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(IntakeError::TooLarge { size: body.len() });
    }
    let verified = keys.verify(headers, body)?;
    let webhook = verified.parse()?;
    window.check(webhook.envelope(), now)?;
    let kind = webhook.kind().to_owned();
    if let Webhook::Unknown(_) = webhook {
        return Ok(Accepted::Ignored { kind });
    }
    let key = idempotency_key(&webhook, body);
    // A parsed body is valid JSON, hence UTF-8.
    let text = String::from_utf8_lossy(verified.body()).into_owned();
    let job = EnrichJob::Webhook {
        key: key.clone(),
        received_at: now,
        body: text,
    };
    let message = Outgoing {
        body: serde_json::to_string(&job).map_err(|e| IntakeError::Queue(QueueError::new(e)))?,
        group_id: Some(group_id(
            webhook.location_id().unwrap_or("-"),
            webhook.contact_id(),
        )),
        dedup_id: Some(key.clone()),
    };
    queue.send(message).await.map_err(IntakeError::Queue)?;
    Ok(Accepted::Queued { key, kind })
}
