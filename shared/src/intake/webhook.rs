//! Webhook intake: verify, validate, enqueue, answer in GHL's terms.
//!
//! Failure policy, in one place. GHL retries only after `429` in one version of its
//! guide, after any non-`2xx` in a later one, and pauses delivery to a URL that
//! fails too often; so `2xx` wherever nothing is lost by it, and:
//! - a wrong or missing signature, a delivery without a `timestamp`, or one sent
//!   from the future or longer ago than letters are kept ([`STALE_KEPT`]) is `401`
//!   and never queued (it cannot become valid);
//! - a verified delivery older than the replay window (a resend from GHL's
//!   webhook log, a long retry tail) is `200` and kept: queued as
//!   [`StaleWebhook`], which enrichment letters (`stale_delivery`) for an
//!   operator to redrive, never acted on by itself;
//! - a body over [`MAX_BODY_BYTES`] is `413`, and so is a verified one whose job
//!   would be over [`MAX_JOB_BYTES`] (`too_large_to_queue`: logged with its id and
//!   counted; GHL gets an answer it does not retry forever);
//! - with no marketplace app configured ([`AppIds`] empty), a signed delivery is
//!   `403` (`no_marketplace_app`): GHL signs every app's webhooks with one key, so
//!   it can only be someone else's;
//! - a delivery naming no app or another GHL app (`appId` not ours) is `200` and
//!   never queued (`other_app`);
//! - a `type` we do not model is `200` and not queued (counted by the caller);
//! - a verified body that fails typed parsing is kept: queued as it came, `200`, so
//!   enrichment dead-letters it with the parse error and a fixed build can redrive it;
//! - a failed enqueue is `429`, never `5xx`, so GHL delivers it again;
//! - otherwise the verified bytes are queued for enrichment, and only then `200`;
//!   a delivery the queue has had already is `200` with `"status": "duplicate"`
//!   where the queue can tell (locally; SQS FIFO drops the repeat without saying).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::MAX_BODY_BYTES;
use crate::ghl::webhook::{
    APP_ID_VAR, AppIds, Envelope, ReplayError, ReplayWindow, SignatureError, SignatureHeaders,
    Webhook, WebhookKeys, idempotency_key,
};
use crate::jobs::{EnrichJob, MAX_JOB_BYTES, StaleWebhook, group_id};

/// How old a verified delivery may be and still be kept (as a letter): as long as
/// a letter is kept. Older, it could only be a replay.
pub const STALE_KEPT: chrono::Duration = chrono::Duration::days(14);
use crate::ports::queue::{Outgoing, Queue, QueueError, Sent};

/// Why a delivery was not accepted, with the answer it gets.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("signature rejected: {0}")]
    Signature(#[from] SignatureError),
    #[error("delivery refused: {0}")]
    Replay(#[from] ReplayError),
    #[error("body of {size} bytes is over the {MAX_BODY_BYTES}-byte limit")]
    TooLarge { size: usize },
    #[error("webhook {key} is too large to queue: {size} bytes as a job, at most {MAX_JOB_BYTES}")]
    TooLargeToQueue { key: String, size: usize },
    #[error(
        "this deployment takes no marketplace webhooks: no app is configured ({APP_ID_VAR}); \
         GHL signs every app's webhooks alike, so this one is someone else's. With a \
         marketplace app, set {APP_ID_VAR} to its id (the stack's GhlAppId); without one, \
         connect with workflows (POST /workflows/ghl)"
    )]
    NoApp,
    #[error("could not queue the webhook; GHL will retry it")]
    Queue(#[source] QueueError),
}

impl IntakeError {
    /// The HTTP status GHL gets.
    pub fn status(&self) -> u16 {
        match self {
            IntakeError::Signature(_) | IntakeError::Replay(_) => 401,
            IntakeError::TooLarge { .. } | IntakeError::TooLargeToQueue { .. } => 413,
            IntakeError::NoApp => 403,
            IntakeError::Queue(_) => 429,
        }
    }

    /// A stable name for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            IntakeError::Signature(_) => "bad_signature",
            IntakeError::Replay(ReplayError::Missing) => "no_timestamp",
            IntakeError::Replay(_) => "outside_replay_window",
            IntakeError::TooLarge { .. } => "too_large",
            IntakeError::TooLargeToQueue { .. } => "too_large_to_queue",
            IntakeError::NoApp => "no_marketplace_app",
            IntakeError::Queue(_) => "enqueue_failed",
        }
    }
}

/// What happened to an accepted delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Queued for enrichment under this idempotency key.
    Queued { key: String, kind: String },
    /// Verified, but not a webhook of its type as we model it: queued as it came,
    /// for enrichment to dead-letter with `problem` (and a redrive to retry).
    Kept {
        key: String,
        kind: String,
        problem: String,
    },
    /// Delivered before (the queue knows its key): acknowledged, not queued again.
    Repeat { key: String, kind: String },
    /// Verified, but delivered later than the replay window allows: queued as a
    /// [`StaleWebhook`], for a letter.
    Stale { key: String, kind: String },
    /// A `type` we do not model: acknowledged, not queued.
    Ignored { kind: String },
    /// Signed by GHL for another app: acknowledged, never queued.
    OtherApp { app_id: String },
}

/// The answer to a delivery: status and JSON body (never the payload or any PII).
pub fn reply(outcome: &Result<Accepted, IntakeError>) -> (u16, Value) {
    match outcome {
        Ok(Accepted::Queued { key, .. } | Accepted::Kept { key, .. }) => {
            (200, json!({"status": "accepted", "webhookId": key}))
        }
        Ok(Accepted::Repeat { key, .. }) => (200, json!({"status": "duplicate", "webhookId": key})),
        Ok(Accepted::Stale { key, .. }) => (200, json!({"status": "stale", "webhookId": key})),
        Ok(Accepted::Ignored { kind }) => (200, json!({"status": "ignored", "type": kind})),
        Ok(Accepted::OtherApp { .. }) => (200, json!({"status": "ignored"})),
        Err(e @ IntakeError::TooLargeToQueue { key, .. }) => (
            e.status(),
            json!({"error": e.code(), "message": e.to_string(), "webhookId": key}),
        ),
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
    apps: &AppIds,
    queue: &impl Queue,
    headers: SignatureHeaders<'_>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Accepted, IntakeError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(IntakeError::TooLarge { size: body.len() });
    }
    let verified = keys.verify(headers, body)?;
    if apps.is_empty() {
        return Err(IntakeError::NoApp);
    }
    let (envelope, contact) = Envelope::of(verified.body()).unwrap_or_default();
    let stale = match window.check(&envelope, now) {
        Ok(()) => None,
        Err(ReplayError::TooOld {
            age_seconds,
            max_seconds,
        }) if age_seconds <= STALE_KEPT.num_seconds() => Some((age_seconds, max_seconds)),
        Err(e) => return Err(e.into()),
    };
    if !apps.ours(&envelope) {
        return Ok(Accepted::OtherApp {
            app_id: envelope.app_id.unwrap_or_default(),
        });
    }
    let key = idempotency_key(&envelope, body);
    let kind = envelope.kind.clone().unwrap_or_default();
    let (group, accepted) = match verified.parse() {
        Ok(Webhook::Unknown(_)) => return Ok(Accepted::Ignored { kind }),
        Ok(webhook) => (
            group_id(webhook.location_id().unwrap_or("-"), webhook.contact_id()),
            Accepted::Queued {
                key: key.clone(),
                kind,
            },
        ),
        Err(problem) => {
            tracing::warn!(
                webhook_id = key,
                kind,
                problem = %problem,
                "a verified webhook does not parse; kept for a dead letter"
            );
            (
                group_id(
                    envelope.location_id.as_deref().unwrap_or("-"),
                    contact.as_deref(),
                ),
                Accepted::Kept {
                    key: key.clone(),
                    kind,
                    problem: problem.to_string(),
                },
            )
        }
    };
    // Verified bytes are kept as they came; a parsed body is JSON, hence UTF-8.
    let text = String::from_utf8_lossy(verified.body()).into_owned();
    let (job, accepted) = match stale {
        None => (
            EnrichJob::Webhook {
                key: key.clone(),
                received_at: now,
                body: text,
            },
            accepted,
        ),
        Some((age_seconds, max_age_seconds)) => {
            tracing::warn!(
                webhook_id = key,
                kind = envelope.kind,
                age_seconds,
                "a webhook delivered past the replay window: kept for an operator, as a dead letter"
            );
            let stale = StaleWebhook {
                key: key.clone(),
                received_at: now,
                body: text,
                age_seconds,
                max_age_seconds,
            };
            let kind = envelope.kind.clone().unwrap_or_default();
            let accepted = Accepted::Stale {
                key: key.clone(),
                kind,
            };
            (EnrichJob::Stale(stale), accepted)
        }
    };
    let message = Outgoing {
        body: serde_json::to_string(&job).map_err(|e| IntakeError::Queue(QueueError::new(e)))?,
        group_id: Some(group),
        dedup_id: Some(key.clone()),
        delay: None,
    };
    if message.body.len() > MAX_JOB_BYTES {
        let size = message.body.len();
        return Err(IntakeError::TooLargeToQueue { key, size });
    }
    match queue.send_once(message).await.map_err(IntakeError::Queue)? {
        Sent::Queued => Ok(accepted),
        Sent::Repeat => Ok(Accepted::Repeat {
            key,
            kind: envelope.kind.unwrap_or_default(),
        }),
    }
}
