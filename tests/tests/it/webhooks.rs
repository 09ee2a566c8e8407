//! GHL's documented webhook examples and the signature test vectors.

use ghl_capi::ghl::webhook::{
    SignatureError, SignatureHeaders, Webhook, WebhookKeys, idempotency_key,
};
use ghl_capi_tests::{read_reference, reference};

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in ["ghl/webhooks", "ghl/webhooks/constructed"] {
        for entry in std::fs::read_dir(reference(dir)).expect("fixture folder") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "json")
                && !path.ends_with("signature-test-vectors.json")
            {
                let name = path
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned();
                out.push((name, std::fs::read(&path).expect("fixture")));
            }
        }
    }
    assert!(
        out.len() >= 30,
        "expected GHL's webhook fixtures, found {}",
        out.len()
    );
    out
}

#[test]
fn every_documented_webhook_parses_to_its_type() {
    for (name, body) in fixtures() {
        let hook = Webhook::parse(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        let declared: serde_json::Value = serde_json::from_slice(&body).expect("json");
        let declared = declared["type"].as_str().unwrap_or_default();
        assert_eq!(hook.kind(), declared, "{name}");
        let known = !matches!(hook, Webhook::Unknown(_));
        let expected_known = !matches!(declared, "" | "OrderCreate");
        assert_eq!(known, expected_known, "{name} parsed as {hook:?}");
    }
}

#[test]
fn contact_webhooks_keep_fields_we_do_not_type() {
    let body = read_reference("ghl/webhooks/constructed/ContactCreate.delivered.json");
    let Webhook::ContactCreate(event) = Webhook::parse(body.as_bytes()).expect("parses") else {
        panic!("not a ContactCreate");
    };
    assert_eq!(
        event.envelope.webhook_id.as_deref(),
        Some("00000000-0000-4000-8000-000000000001")
    );
    assert_eq!(
        event.envelope.location_id.as_deref(),
        Some("ve9EPM428h8vShlRW1KT")
    );
    assert_eq!(event.contact.id, "nmFmQEsNgz6AVpgLVUJ0");
    assert_eq!(
        event.contact.custom_field("BcdmQEsNgz6AVpgLVUJ0"),
        Some(&"XYZ Corp".into())
    );
    assert!(event.contact.extra.contains_key("attachments"));
    let attribution = event.contact.attribution_source.expect("attribution kept");
    assert_eq!(attribution.extra["sessionSource"], "CRM UI");
}

#[test]
fn ids_and_contacts_are_found_across_event_kinds() {
    let opp =
        Webhook::parse(read_reference("ghl/webhooks/OpportunityStatusUpdate.json").as_bytes())
            .expect("parses");
    assert_eq!(opp.contact_id(), Some("cJAWDskpkJHbRbhAT7bs"));
    let appt = Webhook::parse(read_reference("ghl/webhooks/AppointmentCreate.json").as_bytes())
        .expect("parses");
    assert_eq!(appt.contact_id(), Some("9NkT25Vor1v4aQatFsv2"));
    assert_eq!(appt.location_id(), Some("0007BWpSzSwfiuSl0tR2"));
}

#[test]
fn malformed_bodies_are_named_errors() {
    let not_json = Webhook::parse(b"{\"type\": ").unwrap_err().to_string();
    assert!(not_json.contains("not valid JSON"), "{not_json}");
    assert!(
        Webhook::parse(b"[1,2]")
            .unwrap_err()
            .to_string()
            .contains("not a JSON object")
    );
    let missing_id = Webhook::parse(br#"{"type":"ContactCreate","locationId":"x"}"#)
        .unwrap_err()
        .to_string();
    assert!(
        missing_id.contains("ContactCreate") && missing_id.contains("id"),
        "{missing_id}"
    );
    // A value of the wrong shape: the field and the type expected are named,
    // never the value (it may be an e-mail or a phone, and it goes into a letter).
    for (body, field) in [
        (
            r#"{"type":"ContactCreate","locationId":"x","id":"c1","tags":{"jane@example.com":1}}"#,
            "tags",
        ),
        (
            r#"{"type":"ContactCreate","locationId":"x","id":"c1","attributionSource":"jane@example.com"}"#,
            "attributionSource",
        ),
        (
            r#"{"type":"OpportunityStatusUpdate","locationId":"x","id":"o1","monetaryValue":"+1 650 555 1212"}"#,
            "monetaryValue",
        ),
        // serde's own words inside the value: only its last ", expected" is serde's.
        (
            r#"{"type":"ContactCreate","locationId":"x","id":"c1","attributionSource":"as agreed, expected jane@example.com"}"#,
            "attributionSource",
        ),
        (
            r#"{"type":"ContactCreate","locationId":"x","id":"c1","attributionSource":"jane@example.com at line 2"}"#,
            "attributionSource",
        ),
    ] {
        let said = Webhook::parse(body.as_bytes()).unwrap_err().to_string();
        assert!(
            !said.contains("jane") && !said.contains("555"),
            "the value is not quoted: {said}"
        );
        assert!(
            said.contains(&format!("`{field}`")) && said.contains("expected"),
            "{said}"
        );
    }
}

struct Vectors {
    keys: WebhookKeys,
    body: Vec<u8>,
    pretty: Vec<u8>,
    ed25519: String,
    rsa: String,
}

fn vectors() -> Vectors {
    let v: serde_json::Value = serde_json::from_str(&read_reference(
        "ghl/webhooks/constructed/signature-test-vectors.json",
    ))
    .expect("json");
    let dir = "ghl/webhooks/constructed";
    let keys = WebhookKeys::from_pem(
        &read_reference(&format!("{dir}/test-keys/test-ed25519-public.pem")),
        Some(&read_reference(&format!(
            "{dir}/test-keys/test-rsa2048-public.pem"
        ))),
    )
    .expect("test keys parse");
    Vectors {
        keys,
        body: std::fs::read(reference(&format!(
            "{dir}/{}",
            v["body_file"].as_str().expect("file")
        )))
        .expect("body"),
        pretty: std::fs::read(reference(&format!("{dir}/ContactCreate.delivered.json")))
            .expect("pretty"),
        ed25519: v["x-ghl-signature"]["signature_base64"]
            .as_str()
            .expect("sig")
            .to_owned(),
        rsa: v["x-wh-signature"]["signature_base64"]
            .as_str()
            .expect("sig")
            .to_owned(),
    }
}

fn ghl(sig: &str) -> SignatureHeaders<'_> {
    SignatureHeaders {
        ghl: Some(sig),
        legacy: None,
    }
}

fn legacy(sig: &str) -> SignatureHeaders<'_> {
    SignatureHeaders {
        ghl: None,
        legacy: Some(sig),
    }
}

#[test]
fn valid_signatures_over_the_exact_bytes_pass() {
    let v = vectors();
    let verified = v
        .keys
        .verify(ghl(&v.ed25519), &v.body)
        .expect("ed25519 valid");
    assert!(matches!(verified.parse(), Ok(Webhook::ContactCreate(_))));
    v.keys.verify(legacy(&v.rsa), &v.body).expect("rsa valid");
}

#[test]
fn the_same_json_pretty_printed_fails() {
    let v = vectors();
    assert!(matches!(
        v.keys.verify(ghl(&v.ed25519), &v.pretty),
        Err(SignatureError::Mismatch { .. })
    ));
    assert!(matches!(
        v.keys.verify(legacy(&v.rsa), &v.pretty),
        Err(SignatureError::Mismatch { .. })
    ));
}

#[test]
fn flipping_any_byte_of_the_body_fails() {
    let v = vectors();
    for i in 0..v.body.len() {
        let mut body = v.body.clone();
        body[i] ^= 0x01;
        assert!(
            v.keys.verify(ghl(&v.ed25519), &body).is_err(),
            "ed25519 byte {i}"
        );
        assert!(
            v.keys.verify(legacy(&v.rsa), &body).is_err(),
            "rsa byte {i}"
        );
    }
}

#[test]
fn truncated_altered_empty_and_missing_signatures_fail() {
    let v = vectors();
    for sig in [&v.ed25519, &v.rsa] {
        let truncated = &sig[..sig.len() - 8];
        let mut altered = sig.clone().into_bytes();
        altered[10] = if altered[10] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).expect("ascii");
        for bad in [truncated, altered.as_str(), "", "N/A"] {
            assert!(v.keys.verify(ghl(bad), &v.body).is_err(), "ed25519 {bad:?}");
            assert!(v.keys.verify(legacy(bad), &v.body).is_err(), "rsa {bad:?}");
        }
    }
    assert_eq!(
        v.keys
            .verify(SignatureHeaders::default(), &v.body)
            .unwrap_err(),
        SignatureError::Missing
    );
}

#[test]
fn a_present_ed25519_header_alone_decides() {
    let v = vectors();
    let bad_ed_good_rsa = SignatureHeaders {
        ghl: Some(&v.rsa),
        legacy: Some(&v.rsa),
    };
    assert!(v.keys.verify(bad_ed_good_rsa, &v.body).is_err());
    let good_ed_bad_rsa = SignatureHeaders {
        ghl: Some(&v.ed25519),
        legacy: Some("garbage"),
    };
    assert!(v.keys.verify(good_ed_bad_rsa, &v.body).is_ok());
}

#[test]
fn legacy_rsa_can_be_switched_off() {
    let v = vectors();
    let keys = v.keys.without_legacy_rsa();
    assert_eq!(
        keys.verify(legacy(&v.rsa), &v.body).unwrap_err(),
        SignatureError::LegacyRefused
    );
    assert!(keys.verify(ghl(&v.ed25519), &v.body).is_ok());
}

#[test]
fn ghls_published_keys_reject_signatures_made_with_the_test_keys() {
    let v = vectors();
    let published = WebhookKeys::ghl_published();
    assert!(published.verify(ghl(&v.ed25519), &v.body).is_err());
    assert!(matches!(
        published.verify(legacy(&v.rsa), &v.body),
        Err(SignatureError::Malformed { .. })
    ));
}

#[test]
fn the_idempotency_key_is_the_webhook_id_else_a_digest_of_the_body() {
    let delivered = read_reference("ghl/webhooks/constructed/ContactCreate.delivered.json");
    let hook = Webhook::parse(delivered.as_bytes()).expect("parses");
    assert_eq!(
        idempotency_key(hook.envelope(), delivered.as_bytes()),
        "00000000-0000-4000-8000-000000000001"
    );

    let documented = read_reference("ghl/webhooks/ContactCreate.json");
    let hook = Webhook::parse(documented.as_bytes()).expect("parses");
    let key = idempotency_key(hook.envelope(), documented.as_bytes());
    assert!(key.starts_with("sha256:") && key.len() == 7 + 64, "{key}");
    assert_eq!(
        key,
        idempotency_key(hook.envelope(), documented.as_bytes()),
        "same bytes, same key"
    );
    assert_ne!(key, idempotency_key(hook.envelope(), b"{}"));
}
