//! Webhook signatures, checked over the raw body bytes before anything parses them.
//!
//! GHL signs with Ed25519 in `x-ghl-signature` and, until it retires it, with
//! RSA PKCS#1 v1.5 / SHA-256 in `x-wh-signature`. When the Ed25519 header is present
//! it alone decides (no fallback, so a bad new signature cannot be rescued by an old
//! one); the RSA header is accepted only while legacy acceptance is on.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use rsa::signature::Verifier as _;
use sha2::Sha256;

use super::{ParseError, Webhook};

/// GHL's published Ed25519 webhook key.
const GHL_ED25519_PEM: &str = include_str!("../../../keys/ghl-webhook-ed25519-public.pem");
/// GHL's published (legacy) RSA webhook key.
const GHL_RSA_PEM: &str = include_str!("../../../keys/ghl-webhook-rsa-public.pem");

/// Environment variables that override the published keys (PEM text; `\n` escapes
/// are accepted so a key fits on one line).
pub const ED25519_KEY_VAR: &str = "GHL_WEBHOOK_ED25519_PUBLIC_KEY";
pub const RSA_KEY_VAR: &str = "GHL_WEBHOOK_RSA_PUBLIC_KEY";
/// `true` turns legacy RSA acceptance on (off by default: GHL retired the legacy
/// header on 2026-09-01).
pub const ACCEPT_RSA_VAR: &str = "GHL_WEBHOOK_ACCEPT_RSA";

/// The signature headers of a request, as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignatureHeaders<'a> {
    /// `x-ghl-signature` (Ed25519).
    pub ghl: Option<&'a str>,
    /// `x-wh-signature` (legacy RSA).
    pub legacy: Option<&'a str>,
}

/// Why a request is not accepted as coming from GHL. Every variant means `401`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no x-ghl-signature or x-wh-signature header")]
    Missing,
    #[error("{header} is not a base64 signature of the right length")]
    Malformed { header: &'static str },
    #[error("{header} does not match the body")]
    Mismatch { header: &'static str },
    #[error("only x-wh-signature (legacy RSA) was sent and legacy signatures are not accepted")]
    LegacyRefused,
}

/// A webhook public key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{var} is not an Ed25519 public key in PEM form: {reason}")]
    Ed25519 { var: &'static str, reason: String },
    #[error("{var} is not an RSA public key in PEM form: {reason}")]
    Rsa { var: &'static str, reason: String },
    #[error("{ACCEPT_RSA_VAR} must be true or false, not {0:?}")]
    Flag(String),
}

/// The keys webhooks are checked against.
#[derive(Debug, Clone)]
pub struct WebhookKeys {
    ed25519: ed25519_dalek::VerifyingKey,
    /// `None` when legacy RSA signatures are refused.
    rsa: Option<rsa::pkcs1v15::VerifyingKey<Sha256>>,
}

/// A body whose signature was checked: the only way to reach [`Verified::parse`],
/// so no code path can parse an unverified webhook.
#[derive(Debug, Clone, Copy)]
pub struct Verified<'a> {
    body: &'a [u8],
}

impl<'a> Verified<'a> {
    /// The verified bytes.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Parses the verified body.
    pub fn parse(&self) -> Result<Webhook, ParseError> {
        Webhook::parse(self.body)
    }
}

fn pem_text(raw: &str) -> String {
    raw.replace("\\n", "\n")
}

fn decode(header: &'static str, value: &str, len: usize) -> Result<Vec<u8>, SignatureError> {
    STANDARD
        .decode(value.trim())
        .ok()
        .filter(|bytes| bytes.len() == len)
        .ok_or(SignatureError::Malformed { header })
}

impl WebhookKeys {
    /// GHL's published keys, legacy RSA accepted.
    pub fn ghl_published() -> Self {
        // The embedded keys are tested to parse; a failure here is a build defect.
        #[allow(clippy::expect_used)]
        Self::from_pem(GHL_ED25519_PEM, Some(GHL_RSA_PEM)).expect("embedded GHL keys parse")
    }

    /// Keys from PEM text; `rsa_pem: None` refuses legacy signatures.
    pub fn from_pem(ed25519_pem: &str, rsa_pem: Option<&str>) -> Result<Self, KeyError> {
        let ed25519 = ed25519_dalek::VerifyingKey::from_public_key_pem(&pem_text(ed25519_pem))
            .map_err(|e| KeyError::Ed25519 {
                var: ED25519_KEY_VAR,
                reason: e.to_string(),
            })?;
        let rsa = rsa_pem
            .map(|pem| {
                rsa::RsaPublicKey::from_public_key_pem(&pem_text(pem))
                    .map(rsa::pkcs1v15::VerifyingKey::new)
                    .map_err(|e| KeyError::Rsa {
                        var: RSA_KEY_VAR,
                        reason: e.to_string(),
                    })
            })
            .transpose()?;
        Ok(WebhookKeys { ed25519, rsa })
    }

    /// Keys from configuration: the variables above, each defaulting to GHL's
    /// published key, legacy RSA refused unless turned on. `lookup` is usually
    /// `|k| std::env::var(k).ok()`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, KeyError> {
        let accept_rsa = match lookup(ACCEPT_RSA_VAR).as_deref().map(str::trim) {
            Some("true") | Some("1") => true,
            None | Some("") | Some("false") | Some("0") => false,
            Some(other) => return Err(KeyError::Flag(other.to_owned())),
        };
        let ed = lookup(ED25519_KEY_VAR).unwrap_or_else(|| GHL_ED25519_PEM.to_owned());
        let rsa = lookup(RSA_KEY_VAR).unwrap_or_else(|| GHL_RSA_PEM.to_owned());
        Self::from_pem(&ed, accept_rsa.then_some(rsa.as_str()))
    }

    /// The same keys, refusing legacy RSA signatures.
    pub fn without_legacy_rsa(mut self) -> Self {
        self.rsa = None;
        self
    }

    /// Whether legacy RSA signatures are accepted.
    pub fn accepts_legacy_rsa(&self) -> bool {
        self.rsa.is_some()
    }

    /// Checks `body` (the exact bytes received) against the request's signatures.
    pub fn verify<'a>(
        &self,
        headers: SignatureHeaders<'_>,
        body: &'a [u8],
    ) -> Result<Verified<'a>, SignatureError> {
        if let Some(value) = headers.ghl {
            const HEADER: &str = "x-ghl-signature";
            let bytes = decode(HEADER, value, ed25519_dalek::SIGNATURE_LENGTH)?;
            let signature = ed25519_dalek::Signature::from_slice(&bytes)
                .map_err(|_| SignatureError::Malformed { header: HEADER })?;
            return self
                .ed25519
                .verify_strict(body, &signature)
                .map(|()| Verified { body })
                .map_err(|_| SignatureError::Mismatch { header: HEADER });
        }
        let value = headers.legacy.ok_or(SignatureError::Missing)?;
        let key = self.rsa.as_ref().ok_or(SignatureError::LegacyRefused)?;
        const HEADER: &str = "x-wh-signature";
        let modulus_len = rsa::traits::PublicKeyParts::size(key.as_ref());
        let bytes = decode(HEADER, value, modulus_len)?;
        let signature = rsa::pkcs1v15::Signature::try_from(bytes.as_slice())
            .map_err(|_| SignatureError::Malformed { header: HEADER })?;
        key.verify(body, &signature)
            .map(|()| Verified { body })
            .map_err(|_| SignatureError::Mismatch { header: HEADER })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_keys_parse() {
        let keys = WebhookKeys::ghl_published();
        assert!(keys.accepts_legacy_rsa());
        assert!(!keys.without_legacy_rsa().accepts_legacy_rsa());
    }

    #[test]
    fn legacy_acceptance_is_off_unless_turned_on_and_checked() {
        assert!(
            !WebhookKeys::from_lookup(|_| None)
                .expect("valid")
                .accepts_legacy_rsa()
        );
        let on = WebhookKeys::from_lookup(|k| (k == ACCEPT_RSA_VAR).then(|| "true".into()));
        assert!(on.expect("valid").accepts_legacy_rsa());
        let off = WebhookKeys::from_lookup(|k| (k == ACCEPT_RSA_VAR).then(|| "false".into()));
        assert!(!off.expect("valid").accepts_legacy_rsa());
        let bad = WebhookKeys::from_lookup(|k| (k == ACCEPT_RSA_VAR).then(|| "maybe".into()));
        assert!(matches!(bad, Err(KeyError::Flag(_))));
    }

    #[test]
    fn no_header_is_missing() {
        let keys = WebhookKeys::ghl_published();
        let err = keys.verify(SignatureHeaders::default(), b"{}").unwrap_err();
        assert_eq!(err, SignatureError::Missing);
    }
}
