//! The local development key, and the bundled sample webhook it signs.
//!
//! The key is derived from a published phrase, so anyone can sign with it: `serve`
//! trusts it only when started with `--dev`, and then instead of GHL's keys. The
//! signature check itself is never off. The sample names the development app
//! ([`APP_ID`]) and a demo location ([`LOCATION`]), which `--dev` takes as its own.

use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::{Signer, SigningKey};
use ghl_capi::ghl::names::LocationNames;
use ghl_capi::ghl::webhook::{KeyError, WebhookKeys};
use ghl_capi::ghl::{Contact, GhlError, GhlReader, GhlWriter, Related};
use serde_json::Value;
use sha2::{Digest, Sha256};

const SEED_PHRASE: &[u8] = b"ghl-capi local development key: trusted only by serve --dev";
const SAMPLE: &str = include_str!("../samples/contact-created.json");
/// The app the sample's deliveries name: ours under `--dev`.
pub const APP_ID: &str = "ghl-capi-dev-app";
/// The sample's location: connected under `--dev`, though it has no GHL token.
pub const LOCATION: &str = "demoLocation0001";

/// GHL as `G` reads it, with the demo location connected too.
#[derive(Debug)]
pub struct WithDemoLocation<G>(pub G);

impl<G: GhlReader> GhlReader for WithDemoLocation<G> {
    async fn contact(&self, location_id: &str, contact_id: &str) -> Result<Contact, GhlError> {
        self.0.contact(location_id, contact_id).await
    }

    async fn related(
        &self,
        location_id: &str,
        contact_id: &str,
        related: Related,
    ) -> Result<Value, GhlError> {
        self.0.related(location_id, contact_id, related).await
    }

    async fn names(&self, location_id: &str) -> Result<LocationNames, GhlError> {
        // The demo location is GHL's only in the bundled sample.
        if location_id == LOCATION {
            return Ok(LocationNames::default());
        }
        self.0.names(location_id).await
    }

    async fn connected(&self, location_id: &str) -> Result<bool, GhlError> {
        Ok(location_id == LOCATION || self.0.connected(location_id).await?)
    }

    async fn installed(&self, location_id: &str, company_id: &str) -> Result<(), GhlError> {
        self.0.installed(location_id, company_id).await
    }

    async fn uninstalled(
        &self,
        location_id: Option<&str>,
        company_id: Option<&str>,
        sent_at: Option<DateTime<Utc>>,
    ) -> Result<(), GhlError> {
        self.0.uninstalled(location_id, company_id, sent_at).await
    }
}

/// Writes go to GHL as `G` makes them.
impl<G: GhlWriter> GhlWriter for WithDemoLocation<G> {
    async fn add_tag(
        &self,
        location_id: &str,
        contact_id: &str,
        tag: &str,
    ) -> Result<(), GhlError> {
        self.0.add_tag(location_id, contact_id, tag).await
    }

    async fn set_fields(
        &self,
        location_id: &str,
        contact_id: &str,
        fields: &[(String, Value)],
    ) -> Result<(), GhlError> {
        self.0.set_fields(location_id, contact_id, fields).await
    }

    async fn add_note(
        &self,
        location_id: &str,
        contact_id: &str,
        body: &str,
    ) -> Result<(), GhlError> {
        self.0.add_note(location_id, contact_id, body).await
    }

    async fn add_task(
        &self,
        location_id: &str,
        contact_id: &str,
        task: (&str, &str),
        due: DateTime<Utc>,
    ) -> Result<(), GhlError> {
        self.0.add_task(location_id, contact_id, task, due).await
    }

    fn reserved(&self, location_id: &str) -> Option<std::time::Duration> {
        self.0.reserved(location_id)
    }
}

/// The development signing key.
pub fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&Sha256::digest(SEED_PHRASE).into())
}

/// The development key's public half, as `GHL_WEBHOOK_ED25519_PUBLIC_KEY` would
/// hold it.
pub fn public_pem() -> Result<String, KeyError> {
    signing_key()
        .verifying_key()
        .to_public_key_pem(Default::default())
        .map_err(|e| KeyError::Ed25519 {
            var: "dev key",
            reason: e.to_string(),
        })
}

/// Keys that accept the development key's signatures (and nothing else).
pub fn keys() -> Result<WebhookKeys, KeyError> {
    WebhookKeys::from_pem(&public_pem()?, None)
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
        fields.insert("appId".into(), APP_ID.into());
        fields.insert("timestamp".into(), now.to_rfc3339().into());
        fields.insert("dateAdded".into(), now.to_rfc3339().into());
    }
    body.to_string().into_bytes()
}

/// The sample as the `n`-th of many new contacts (its own id and e-mail), sent now
/// under `webhook_id`: load for `serve --dev`.
pub fn new_contact(webhook_id: &str, n: usize, now: DateTime<Utc>) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&sample(webhook_id, now)).unwrap_or_default();
    if let Value::Object(fields) = &mut body {
        fields.insert("id".into(), format!("newContact{n:010}").into());
        fields.insert("email".into(), format!("lead{n}@example.com").into());
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
