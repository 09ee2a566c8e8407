//! Webhook intake: what GHL gets back, and what reaches the enrichment queue.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, Utc};
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::{Signer, SigningKey};
use ghl_capi::ghl::webhook::{AppIds, ReplayWindow, SignatureHeaders, WebhookKeys};
use ghl_capi::intake::MAX_BODY_BYTES;
use ghl_capi::intake::webhook::{Accepted, IntakeError, accept_webhook, reply};
use ghl_capi::jobs::EnrichJob;
use ghl_capi::ports::queue::MemoryQueue;
use ghl_capi_tests::{read_reference, reference};

/// GHL's constructed delivery, signed with the reference's local test keys.
struct Delivery {
    keys: WebhookKeys,
    body: Vec<u8>,
    signature: String,
    sent: DateTime<Utc>,
}

fn delivery() -> Delivery {
    let dir = "ghl/webhooks/constructed";
    let vectors: serde_json::Value = serde_json::from_str(&read_reference(&format!(
        "{dir}/signature-test-vectors.json"
    )))
    .expect("json");
    Delivery {
        keys: WebhookKeys::from_pem(
            &read_reference(&format!("{dir}/test-keys/test-ed25519-public.pem")),
            None,
        )
        .expect("key"),
        body: std::fs::read(reference(&format!(
            "{dir}/ContactCreate.delivered.compact.json"
        )))
        .expect("body"),
        signature: vectors["x-ghl-signature"]["signature_base64"]
            .as_str()
            .expect("sig")
            .to_owned(),
        sent: "2021-11-26T12:41:03Z".parse().expect("time"),
    }
}

/// The app GHL's constructed delivery names.
fn reference_apps() -> AppIds {
    AppIds::parse("000000000000000000000001")
}

/// The app the bodies signed with our own key name.
const OUR_APP: &str = "app-ours";

fn ghl(signature: &str) -> SignatureHeaders<'_> {
    SignatureHeaders {
        ghl: Some(signature),
        legacy: None,
    }
}

/// A key of our own, so tests can sign bodies the reference has no signature for.
fn own_key() -> (SigningKey, WebhookKeys) {
    let signing = SigningKey::from_bytes(&[7u8; 32]);
    let pem = signing
        .verifying_key()
        .to_public_key_pem(Default::default())
        .expect("pem");
    (signing, WebhookKeys::from_pem(&pem, None).expect("key"))
}

fn sign(key: &SigningKey, body: &[u8]) -> String {
    STANDARD.encode(key.sign(body).to_bytes())
}

impl Delivery {
    /// Delivered as GHL sent it, to `queue`, at `at`.
    async fn accepted_at(
        &self,
        queue: &MemoryQueue,
        at: DateTime<Utc>,
    ) -> Result<Accepted, IntakeError> {
        let window = ReplayWindow::default();
        let headers = ghl(&self.signature);
        accept_webhook(
            &self.keys,
            &window,
            &reference_apps(),
            queue,
            headers,
            &self.body,
            at,
        )
        .await
    }
}

#[tokio::test]
async fn a_signed_webhook_is_queued_in_its_contacts_group_and_answered_200() {
    let d = delivery();
    let queue = MemoryQueue::default();
    let now = d.sent + Duration::seconds(2);
    let outcome = d.accepted_at(&queue, now).await;
    let (status, body) = reply(&outcome);
    assert_eq!(status, 200);
    assert_eq!(body["webhookId"], "00000000-0000-4000-8000-000000000001");

    let sent = queue.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].group_id.as_deref(),
        Some("ve9EPM428h8vShlRW1KT:nmFmQEsNgz6AVpgLVUJ0")
    );
    assert_eq!(
        sent[0].dedup_id.as_deref(),
        Some("00000000-0000-4000-8000-000000000001")
    );
    let job: EnrichJob = serde_json::from_str(&sent[0].body).expect("job");
    let EnrichJob::Webhook {
        key,
        received_at,
        body,
    } = job
    else {
        panic!("not a webhook job")
    };
    assert_eq!(
        (key.as_str(), received_at),
        ("00000000-0000-4000-8000-000000000001", now)
    );
    assert_eq!(
        body.as_bytes(),
        d.body.as_slice(),
        "the exact verified bytes travel on"
    );
}

#[tokio::test]
async fn bad_missing_or_stale_signatures_are_401_and_never_queued() {
    let d = delivery();
    let queue = MemoryQueue::default();
    let window = ReplayWindow::default();
    let now = d.sent + Duration::seconds(2);
    let forged = accept_webhook(
        &d.keys,
        &window,
        &reference_apps(),
        &queue,
        ghl(&d.signature.replace('C', "D")),
        &d.body,
        now,
    )
    .await;
    let missing = accept_webhook(
        &d.keys,
        &window,
        &reference_apps(),
        &queue,
        SignatureHeaders::default(),
        &d.body,
        now,
    )
    .await;
    let ancient = accept_webhook(
        &d.keys,
        &window,
        &reference_apps(),
        &queue,
        ghl(&d.signature),
        &d.body,
        d.sent + Duration::days(15),
    )
    .await;
    for outcome in [&forged, &missing, &ancient] {
        assert_eq!(reply(outcome).0, 401, "{outcome:?}");
    }
    assert!(
        matches!(ancient, Err(IntakeError::Replay(_))),
        "older than a letter lives"
    );
    assert!(queue.sent().is_empty());
}

#[tokio::test]
async fn a_verified_delivery_past_the_replay_window_is_kept_for_a_letter_not_refused() {
    let d = delivery();
    let queue = MemoryQueue::default();
    // A resend from GHL's webhook log, hours after GHL first sent it.
    let outcome = d.accepted_at(&queue, d.sent + Duration::hours(3)).await;
    let (status, answer) = reply(&outcome);
    assert_eq!((status, answer["status"].as_str()), (200, Some("stale")));
    let sent = queue.sent();
    let job: EnrichJob = serde_json::from_str(&sent[0].body).expect("job");
    let EnrichJob::Stale(stale) = job else {
        panic!("kept as stale: {job:?}")
    };
    assert_eq!(stale.age_seconds, 3 * 3600);
    assert_eq!(stale.body.as_bytes(), d.body.as_slice());
    assert_eq!(
        sent[0].dedup_id.as_deref(),
        Some("00000000-0000-4000-8000-000000000001"),
        "deduplicated by its webhook id as any delivery"
    );
}

#[tokio::test]
async fn a_failed_enqueue_is_429_so_ghl_retries_and_the_retry_is_accepted() {
    let d = delivery();
    let queue = MemoryQueue::default();
    queue.fail_next(1);
    let now = d.sent + Duration::seconds(2);
    let window = ReplayWindow::default();
    let first = accept_webhook(
        &d.keys,
        &window,
        &reference_apps(),
        &queue,
        ghl(&d.signature),
        &d.body,
        now,
    )
    .await;
    assert_eq!(reply(&first).0, 429);
    assert!(queue.sent().is_empty());
    let retry = accept_webhook(
        &d.keys,
        &window,
        &reference_apps(),
        &queue,
        ghl(&d.signature),
        &d.body,
        now + Duration::minutes(10),
    )
    .await;
    assert_eq!(reply(&retry).0, 200);
    assert_eq!(queue.sent().len(), 1);
}

/// Accepts `body`, signed with our own key, at `now`.
async fn accept_own(
    queue: &MemoryQueue,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Accepted, IntakeError> {
    let (signing, keys) = own_key();
    let signature = sign(&signing, body);
    accept_webhook(
        &keys,
        &ReplayWindow::default(),
        &AppIds::parse(OUR_APP),
        queue,
        ghl(&signature),
        body,
        now,
    )
    .await
}

#[tokio::test]
async fn a_verified_body_that_does_not_parse_is_kept_queued_and_answered_200() {
    let queue = MemoryQueue::default();
    let now: DateTime<Utc> = "2026-12-01T10:00:05Z".parse().expect("time");
    // A ContactCreate without its contact id: GHL signed it, so it is kept.
    let body = br#"{"appId":"app-ours","type":"ContactCreate","locationId":"loc","timestamp":"2026-12-01T10:00:00Z","webhookId":"wh-9"}"#;
    let outcome = accept_own(&queue, body, now).await;
    let Ok(Accepted::Kept { key, kind, problem }) = &outcome else {
        panic!("kept: {outcome:?}")
    };
    assert_eq!((key.as_str(), kind.as_str()), ("wh-9", "ContactCreate"));
    assert!(problem.contains("missing field `id`"), "{problem}");
    let (status, reply_body) = reply(&outcome);
    assert_eq!(status, 200);
    assert_eq!(reply_body["webhookId"], "wh-9");
    let sent = queue.sent();
    assert_eq!(
        sent.len(),
        1,
        "queued as it came, for a dead letter with why"
    );
    let job: EnrichJob = serde_json::from_str(&sent[0].body).expect("a job");
    let EnrichJob::Webhook { body: kept, .. } = job else {
        panic!("a webhook job")
    };
    assert_eq!(kept.as_bytes(), body, "the verified bytes, unchanged");
}

#[tokio::test]
async fn numbers_written_as_text_and_text_as_numbers_are_read_where_the_meaning_is_clear() {
    let queue = MemoryQueue::default();
    let now: DateTime<Utc> = "2026-12-01T10:00:05Z".parse().expect("time");
    let body = br#"{"appId":"app-ours","type":"OpportunityStatusUpdate","locationId":"loc","id":"opp-1","contactId":"c1",
        "status":"won","monetaryValue":"1250.50","timestamp":"2026-12-01T10:00:00Z","webhookId":"wh-1"}"#;
    assert!(
        matches!(
            accept_own(&queue, body, now).await,
            Ok(Accepted::Queued { .. })
        ),
        "monetaryValue as text"
    );
    let body = br#"{"appId":"app-ours","type":"ContactCreate","locationId":"loc","id":12345,"postalCode":94025,
        "timestamp":"2026-12-01T10:00:00Z","webhookId":"wh-2"}"#;
    assert!(
        matches!(
            accept_own(&queue, body, now).await,
            Ok(Accepted::Queued { .. })
        ),
        "a contact id and a postal code as numbers"
    );
    let webhook = ghl_capi::ghl::webhook::Webhook::parse(body).expect("coerced");
    assert_eq!(webhook.contact_id(), Some("12345"));
    assert_eq!(queue.sent().len(), 2);
}

#[tokio::test]
async fn a_signed_body_without_a_timestamp_is_401_and_never_queued() {
    let queue = MemoryQueue::default();
    let now = Utc::now();
    for body in [
        &br#"{"appId":"app-ours","type":"ContactCreate","locationId":"loc","id":"c1","webhookId":"wh-1"}"#[..],
        b"type=ContactCreate",
    ] {
        let outcome = accept_own(&queue, body, now).await;
        let (status, reply_body) = reply(&outcome);
        assert_eq!(
            (status, reply_body["error"].as_str()),
            (401, Some("no_timestamp"))
        );
    }
    assert!(queue.sent().is_empty());
}

#[tokio::test]
async fn an_unknown_type_is_acknowledged_but_not_queued() {
    let queue = MemoryQueue::default();
    let body = br#"{"appId":"app-ours","type":"CampaignStatusUpdate","locationId":"loc","webhookId":"w1","timestamp":"2026-12-01T10:00:00Z"}"#;
    let now: DateTime<Utc> = "2026-12-01T10:00:05Z".parse().expect("time");
    let outcome = accept_own(&queue, body, now).await;
    assert_eq!(
        outcome.as_ref().ok(),
        Some(&Accepted::Ignored {
            kind: "CampaignStatusUpdate".into()
        })
    );
    assert_eq!(reply(&outcome).0, 200);
    assert!(queue.sent().is_empty());
}

#[tokio::test]
async fn an_oversized_body_is_413_before_any_check() {
    let (_, keys) = own_key();
    let queue = MemoryQueue::default();
    let body = vec![b' '; MAX_BODY_BYTES + 1];
    let outcome = accept_webhook(
        &keys,
        &ReplayWindow::default(),
        &reference_apps(),
        &queue,
        SignatureHeaders::default(),
        &body,
        Utc::now(),
    )
    .await;
    assert_eq!(reply(&outcome).0, 413);
}

#[tokio::test]
async fn replies_carry_no_payload_data() {
    let (signing, keys) = own_key();
    let queue = MemoryQueue::default();
    let body = br#"{"appId":"app-ours","type":"ContactCreate","locationId":"loc","id":"c1","email":"secret@example.com","timestamp":"2001-01-01T00:00:00Z"}"#;
    let outcome = accept_webhook(
        &keys,
        &ReplayWindow::default(),
        &reference_apps(),
        &queue,
        ghl(&sign(&signing, body)),
        body,
        Utc::now(),
    )
    .await;
    let (status, reply_body) = reply(&outcome);
    assert_eq!(status, 401);
    assert!(!reply_body.to_string().contains("secret@example.com"));
}

#[tokio::test]
async fn with_no_marketplace_app_a_signed_delivery_is_refused_saying_what_to_set() {
    let (signing, keys) = own_key();
    let queue = MemoryQueue::default();
    let now: DateTime<Utc> = "2026-12-01T10:00:05Z".parse().expect("time");
    // GHL signs every app's webhooks alike: with no app of ours, any is a stranger's.
    for body in [
        &br#"{"type":"ContactCreate","appId":"their-app","locationId":"loc","id":"c1","webhookId":"w1","timestamp":"2026-12-01T10:00:00Z"}"#[..],
        br#"{"type":"UNINSTALL","locationId":"loc","webhookId":"w2","timestamp":"2026-12-01T10:00:00Z"}"#,
    ] {
        let outcome = accept_webhook(
            &keys,
            &ReplayWindow::default(),
            &AppIds::default(),
            &queue,
            ghl(&sign(&signing, body)),
            body,
            now,
        )
        .await;
        let (status, answer) = reply(&outcome);
        assert_eq!((status, answer["error"].as_str()), (403, Some("no_marketplace_app")));
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains("GHL_APP_ID") && message.contains("/workflows/ghl"), "{message}");
    }
    assert!(queue.sent().is_empty());
}

#[tokio::test]
async fn another_apps_webhooks_are_acknowledged_and_never_queued() {
    let (signing, keys) = own_key();
    let queue = MemoryQueue::default();
    let ours = AppIds::parse(OUR_APP);
    let now: DateTime<Utc> = "2026-12-01T10:00:05Z".parse().expect("time");
    let deliver = |body: &'static [u8]| {
        let (keys, queue, ours) = (&keys, &queue, &ours);
        let signature = sign(&signing, body);
        async move {
            let outcome = accept_webhook(
                keys,
                &ReplayWindow::default(),
                ours,
                queue,
                ghl(&signature),
                body,
                now,
            )
            .await;
            reply(&outcome)
        }
    };
    // Another developer's app, pointed at our URL: GHL signs theirs with the same key.
    for theirs in [
        &br#"{"type":"UNINSTALL","appId":"their-app","locationId":"loc","webhookId":"w1","timestamp":"2026-12-01T10:00:00Z"}"#[..],
        br#"{"type":"ContactCreate","appId":"their-app","locationId":"loc","id":"c1","webhookId":"w2","timestamp":"2026-12-01T10:00:00Z"}"#,
        // Naming no app: it cannot be told from another app's.
        br#"{"type":"UNINSTALL","locationId":"loc","webhookId":"w4","timestamp":"2026-12-01T10:00:00Z"}"#,
    ] {
        let (status, body) = deliver(theirs).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("ignored")));
    }
    assert!(queue.sent().is_empty(), "nothing of theirs is queued");
    let (status, _) = deliver(br#"{"type":"ContactCreate","appId":"app-ours","locationId":"loc","id":"c1","webhookId":"w3","timestamp":"2026-12-01T10:00:00Z"}"#).await;
    assert_eq!(status, 200);
    assert_eq!(queue.sent().len(), 1, "ours is");
}
