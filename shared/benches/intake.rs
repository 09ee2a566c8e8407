//! The webhook intake handler's time per request, without the queue call (a queue
//! that accepts at once): p50, p99 and max over many signed deliveries, beside the
//! bare Ed25519 check of the same body in the same run as the baseline.
//!
//! `cargo bench -p ghl-capi --bench intake`

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::{Signer, SigningKey, Verifier};
use ghl_capi::ghl::install::NoInstall;
use ghl_capi::ghl::webhook::{AppIds, ReplayWindow, SignatureHeaders, WebhookKeys};
use ghl_capi::intake::{Api, Request};
use ghl_capi::ports::queue::{Outgoing, Queue, QueueError};
use ghl_capi::ports::secrets::EnvSecrets;

const RUNS: usize = 20_000;

/// Accepts every message at once: the handler alone is measured.
struct NullQueue;

impl Queue for NullQueue {
    async fn send(&self, message: Outgoing) -> Result<(), QueueError> {
        std::hint::black_box(message);
        Ok(())
    }
}

fn percentiles(mut times: Vec<Duration>) -> (Duration, Duration, Duration) {
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    (at(0.50), at(0.99), times[times.len() - 1])
}

fn main() {
    let key = SigningKey::from_bytes(&[9u8; 32]);
    let pem = key
        .verifying_key()
        .to_public_key_pem(Default::default())
        .expect("pem");
    let api = Api {
        keys: WebhookKeys::from_pem(&pem, None).expect("keys"),
        window: ReplayWindow::default(),
        apps: AppIds::parse("bench-app"),
        queue: NullQueue,
        secrets: EnvSecrets,
        conversion_keys_secret: None,
        allow_unscoped_keys: false,
        warned_unscoped: Default::default(),
        install: NoInstall,
    };
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/ghl/webhooks/ContactCreate.json"
    );
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    let bodies: Vec<(Vec<u8>, String)> = (0..RUNS)
        .map(|i| {
            let mut body = fixture.clone();
            body["webhookId"] = format!("wh-{i}").into();
            body["appId"] = "bench-app".into();
            body["timestamp"] = Utc::now().to_rfc3339().into();
            let body = serde_json::to_vec(&body).expect("json");
            let signature = STANDARD.encode(key.sign(&body).to_bytes());
            (body, signature)
        })
        .collect();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let handler = runtime.block_on(async {
        let mut times = Vec::with_capacity(RUNS);
        for (body, signature) in &bodies {
            let request = Request {
                method: "POST",
                path: "/webhooks/ghl",
                query: None,
                credentials: Default::default(),
                signatures: SignatureHeaders {
                    ghl: Some(signature),
                    legacy: None,
                },
                body,
            };
            let started = Instant::now();
            let answer = api.handle(request, Utc::now()).await;
            times.push(started.elapsed());
            assert_eq!(answer.status, 200);
        }
        times
    });
    let verifying = key.verifying_key();
    let baseline: Vec<Duration> = bodies
        .iter()
        .map(|(body, signature)| {
            let bytes = STANDARD.decode(signature).expect("base64");
            let signature = ed25519_dalek::Signature::from_slice(&bytes).expect("signature");
            let started = Instant::now();
            verifying.verify(body, &signature).expect("valid");
            started.elapsed()
        })
        .collect();

    let (h50, h99, hmax) = percentiles(handler);
    let (b50, b99, _) = percentiles(baseline);
    println!(
        "webhook intake handler, {RUNS} signed ContactCreate deliveries, queue call excluded:"
    );
    println!("  handler:            p50 {h50:>9.1?}  p99 {h99:>9.1?}  max {hmax:>9.1?}");
    println!("  Ed25519 check only: p50 {b50:>9.1?}  p99 {b99:>9.1?}");
    println!(
        "  handler / signature check: {:.2}x at p50, {:.2}x at p99",
        h50.as_secs_f64() / b50.as_secs_f64(),
        h99.as_secs_f64() / b99.as_secs_f64()
    );
}
