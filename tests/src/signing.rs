//! A webhook signing key of the tests' own (GHL's private key is GHL's), and the
//! keys that trust it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::{Signer, SigningKey};
use ghl_capi::ghl::webhook::{SignatureHeaders, WebhookKeys};

/// The tests' Ed25519 key.
pub fn key() -> SigningKey {
    SigningKey::from_bytes(&[42u8; 32])
}

/// Its public half, as `GHL_WEBHOOK_ED25519_PUBLIC_KEY` holds it.
pub fn public_pem() -> String {
    key()
        .verifying_key()
        .to_public_key_pem(Default::default())
        .expect("pem")
}

/// Webhook keys that accept the tests' signatures (and refuse legacy RSA).
pub fn keys() -> WebhookKeys {
    WebhookKeys::from_pem(&public_pem(), None).expect("key")
}

/// The `x-ghl-signature` value for `body`.
pub fn sign(body: &[u8]) -> String {
    STANDARD.encode(key().sign(body).to_bytes())
}

/// Headers carrying `signature` as `x-ghl-signature`.
pub fn ghl(signature: &str) -> SignatureHeaders<'_> {
    SignatureHeaders {
        ghl: Some(signature),
        legacy: None,
    }
}
