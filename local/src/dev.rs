//! The local development key, and the bundled sample webhook it signs.
//!
//! The key is derived from a published phrase, so anyone can sign with it: `serve`
//! trusts it only when started with `--dev`, and then instead of GHL's keys. The
//! signature check itself is never off.

use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::{Signer, SigningKey};
use ghl_capi::ghl::webhook::{KeyError, WebhookKeys};
use serde_json::Value;
use sha2::{Digest, Sha256};

const SEED_PHRASE: &[u8] = b"ghl-capi local development key: trusted only by serve --dev";
const SAMPLE: &str = include_str!("../samples/contact-created.json");

/// The development signing key.
pub fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&Sha256::digest(SEED_PHRASE).into())
}

/// Keys that accept the development key's signatures (and nothing else).
pub fn keys() -> Result<WebhookKeys, KeyError> {
    let pem = signing_key()
        .verifying_key()
        .to_public_key_pem(Default::default())
        .map_err(|e| KeyError::Ed25519 {
            var: "dev key",
            reason: e.to_string(),
        })?;
    WebhookKeys::from_pem(&pem, None)
}

/// The `x-ghl-signature` header for `body`.
pub fn sign(body: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(signing_key().sign(body).to_bytes())
}

/// The bundled sample (a contact created), sent now under `webhook_id`.
pub fn sample(webhook_id: &str, now: DateTime<Utc>) -> Vec<u8> {
    let mut body: Value = serde_json::from_str(SAMPLE).unwrap_or_default();
    if let Value::Object(fields) = &mut body {
        fields.insert("webhookId".into(), webhook_id.into());
        fields.insert("timestamp".into(), now.to_rfc3339().into());
        fields.insert("dateAdded".into(), now.to_rfc3339().into());
    }
    body.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ghl_capi::ghl::webhook::{SignatureHeaders, Webhook};

    #[test]
    fn the_sample_is_a_contact_created_signed_with_the_dev_key() {
        let body = sample("wh-demo-1", Utc::now());
        let signature = sign(&body);
        let keys = keys().expect("dev keys");
        let headers = SignatureHeaders {
            ghl: Some(&signature),
            legacy: None,
        };
        let webhook = keys
            .verify(headers, &body)
            .expect("verified")
            .parse()
            .expect("parsed");
        assert!(matches!(webhook, Webhook::ContactCreate(_)));
        assert!(
            WebhookKeys::ghl_published().verify(headers, &body).is_err(),
            "GHL's own keys do not accept the dev key"
        );
    }
}
