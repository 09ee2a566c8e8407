//! Properties of everything that reads outside input, on arbitrary bytes and on
//! near-valid inputs: the webhook parser, the signature check, the conversion
//! body, the workflow call, the mapping loader and normalisation. None panics; the signature check
//! never accepts a body changed after signing; normalisation is idempotent on its
//! own output.
//!
//! Each property runs `PROPTEST_CASES` cases (256 by default); with
//! `PROPERTY_SECONDS` set it keeps running fresh rounds until that long has
//! passed, and says how many cases it ran:
//!
//! ```sh
//! PROPERTY_SECONDS=120 scripts/test.sh -p ghl-capi-tests -- properties --nocapture --test-threads 1
//! ```

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::{Signer, SigningKey};
use ghl_capi::ghl::webhook::{
    AppIds, Envelope, ReplayWindow, SignatureHeaders, Webhook, WebhookKeys,
};
use ghl_capi::intake::conversion::{self, accept_conversion};
use ghl_capi::intake::keys::{ApiKeys, Credentials};
use ghl_capi::intake::webhook::{accept_webhook, reply};
use ghl_capi::intake::workflow::{self, accept_workflow};
use ghl_capi::mapping::Mapping;
use ghl_capi::normalize::{Field, normalize};
use ghl_capi::ports::queue::MemoryQueue;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};

/// Runs `test` on `strategy`'s cases: one round, or rounds until
/// `PROPERTY_SECONDS` have passed.
fn check<S: Strategy>(
    name: &str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let seconds: Option<u64> = std::env::var("PROPERTY_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok());
    let until = Instant::now() + Duration::from_secs(seconds.unwrap_or(0));
    let config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    let mut cases = 0;
    loop {
        let mut runner = TestRunner::new(config.clone());
        if let Err(e) = runner.run(&strategy, &test) {
            panic!("{name}: {e}");
        }
        cases += u64::from(config.cases);
        if Instant::now() >= until {
            break;
        }
    }
    eprintln!("property {name}: {cases} cases, none failed");
}

/// The webhook types GHL sends, and some it does not.
const KINDS: [&str; 12] = [
    "ContactCreate",
    "ContactUpdate",
    "ContactTagUpdate",
    "ContactDelete",
    "OpportunityStatusUpdate",
    "OpportunityCreate",
    "AppointmentCreate",
    "NoteCreate",
    "INSTALL",
    "UNINSTALL",
    "InboundMessage",
    "SomethingNew",
];
const FIELDS: [&str; 18] = [
    "locationId",
    "id",
    "contactId",
    "email",
    "phone",
    "tags",
    "monetaryValue",
    "status",
    "timestamp",
    "webhookId",
    "appId",
    "dateAdded",
    "firstName",
    "country",
    "customFields",
    "attributionSource",
    "appointment",
    "companyId",
];

/// A JSON value of any shape, small.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::String),
        "2026-1[0-2]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]Z".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A webhook body as GHL might send it: a known (or new) type, with GHL's field
/// names holding values of any shape.
fn near_webhook() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(KINDS.to_vec()),
        prop::collection::btree_map(prop::sample::select(FIELDS.to_vec()), value(), 0..12),
    )
        .prop_map(|(kind, fields)| {
            let mut body: Map<String, Value> =
                fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            body.insert("type".into(), kind.into());
            serde_json::to_vec(&Value::Object(body)).expect("json")
        })
}

fn key() -> (SigningKey, WebhookKeys) {
    let signing = SigningKey::from_bytes(&[9u8; 32]);
    let pem = signing
        .verifying_key()
        .to_public_key_pem(Default::default())
        .expect("pem");
    (signing, WebhookKeys::from_pem(&pem, None).expect("key"))
}

fn headers(signature: &str) -> SignatureHeaders<'_> {
    SignatureHeaders {
        ghl: Some(signature),
        legacy: None,
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(future)
}

#[test]
fn the_webhook_parser_never_panics_on_any_bytes_or_any_shape() {
    check(
        "webhook bytes",
        prop::collection::vec(any::<u8>(), 0..2048),
        |bytes| {
            let _ = Webhook::parse(&bytes);
            let _ = Envelope::of(&bytes);
            Ok(())
        },
    );
    check("webhook shapes", near_webhook(), |body| {
        if let Ok(webhook) = Webhook::parse(&body) {
            let _ = (webhook.kind(), webhook.location_id(), webhook.contact_id());
        }
        Ok(())
    });
}

#[test]
fn a_signed_delivery_of_any_shape_is_answered_2xx_or_401_and_never_5xx() {
    let (signing, keys) = key();
    let now: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().expect("time");
    let ours = AppIds::parse("app-ours");
    check("signed deliveries", near_webhook(), |body| {
        // Most for our app, the rest as the fields drew them.
        let mut body: Map<String, Value> = serde_json::from_slice(&body).unwrap_or_default();
        if !body.len().is_multiple_of(4) {
            body.insert("appId".into(), "app-ours".into());
        }
        let body = serde_json::to_vec(&body).expect("json");
        let signature = STANDARD.encode(signing.sign(&body).to_bytes());
        let queue = MemoryQueue::default();
        let outcome = block_on(accept_webhook(
            &keys,
            &ReplayWindow::default(),
            &ours,
            &queue,
            headers(&signature),
            &body,
            now,
        ));
        let status = reply(&outcome).0;
        prop_assert!(
            status == 200 || status == 401,
            "{status} for {}",
            String::from_utf8_lossy(&body)
        );
        Ok(())
    });
}

#[test]
fn the_signature_check_never_accepts_a_body_changed_after_signing() {
    let (signing, keys) = key();
    let change = (
        prop::collection::vec(any::<u8>(), 1..512),
        any::<prop::sample::Index>(),
        1u8..=255,
        prop::collection::vec(any::<u8>(), 0..4),
    );
    check("altered bodies", change, |(body, at, flip, tail)| {
        let signature = STANDARD.encode(signing.sign(&body).to_bytes());
        prop_assert!(keys.verify(headers(&signature), &body).is_ok());
        let mut flipped = body.clone();
        flipped[at.index(body.len())] ^= flip;
        prop_assert!(keys.verify(headers(&signature), &flipped).is_err());
        let mut longer = body.clone();
        longer.extend(&tail);
        prop_assert!(tail.is_empty() || keys.verify(headers(&signature), &longer).is_err());
        prop_assert!(
            keys.verify(headers(&signature), &body[..body.len() - 1])
                .is_err()
        );
        Ok(())
    });
    check(
        "any signature header",
        (".{0,120}", prop::collection::vec(any::<u8>(), 0..256)),
        |(header, body)| {
            prop_assert!(
                keys.verify(headers(&header), &body).is_err(),
                "a guess verified"
            );
            Ok(())
        },
    );
}

/// The key both keyed routes' properties post with, for location `loc`.
fn scoped_keys() -> ApiKeys {
    ApiKeys::parse(r#"[{"id": "k", "key": "ck_test", "locations": ["loc"]}]"#).expect("keys")
}

fn bearer() -> Credentials<'static> {
    Credentials {
        authorization: Some("Bearer ck_test"),
        api_key: None,
        ..Default::default()
    }
}

/// When the keyed routes' properties run, as far as their checks of time go.
const KEYED_NOW: &str = "2026-12-01T10:00:00Z";

/// Bodies for a keyed route: arbitrary bytes, or objects of `fields` holding
/// values of any shape. Half of the objects get `located`'s fields (where the map
/// gave none), so that the accepted path is walked too.
fn keyed_bodies(
    fields: &'static [&'static str],
    located: &'static [(&'static str, &'static str)],
) -> impl Strategy<Value = Vec<u8>> {
    let near = (
        prop::collection::btree_map(prop::sample::select(fields.to_vec()), value(), 0..12),
        any::<bool>(),
    )
        .prop_map(move |(m, with_located)| {
            let mut body: Map<String, Value> =
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            if with_located {
                for (key, value) in located {
                    body.entry(*key).or_insert(json!(value));
                }
            }
            serde_json::to_vec(&Value::Object(body)).expect("json")
        });
    prop_oneof![prop::collection::vec(any::<u8>(), 0..512), near]
}

#[test]
fn a_posted_conversion_of_any_shape_is_answered_without_a_panic_or_a_5xx() {
    let keys = scoped_keys();
    let now: DateTime<Utc> = KEYED_NOW.parse().expect("time");
    let fields = &[
        "locationId",
        "eventType",
        "timestamp",
        "value",
        "currency",
        "eventId",
        "customData",
        "extra",
    ];
    let located = &[
        ("locationId", "loc"),
        ("eventType", "Lead"),
        ("timestamp", "2026-12-01T09:00:00Z"),
    ];
    check(
        "conversions",
        (keyed_bodies(fields, located), "[a-zA-Z0-9._-]{0,12}"),
        |(body, contact)| {
            let queue = MemoryQueue::default();
            let outcome = block_on(accept_conversion(
                &keys,
                &queue,
                &contact,
                bearer(),
                &body,
                now,
            ));
            let status = conversion::CHECKS.reply(&outcome).0;
            prop_assert!([202, 400, 403].contains(&status), "{status}");
            prop_assert_eq!(queue.sent().len(), usize::from(status == 202));
            Ok(())
        },
    );
}

#[test]
fn a_workflow_call_of_any_shape_is_answered_without_a_panic_or_a_5xx() {
    let keys = scoped_keys();
    let now: DateTime<Utc> = KEYED_NOW.parse().expect("time");
    let fields = &[
        "locationId",
        "location_id",
        "location",
        "contactId",
        "contact_id",
        "contact",
        "workflow",
        "workflowName",
        "event",
        "value",
        "currency",
        "eventId",
        "occurredAt",
        "customData",
        "triggerData",
        "tags",
        "email",
        "attributionSource",
    ];
    let located = &[
        ("locationId", "loc"),
        ("contactId", "c1"),
        ("workflow", "w"),
    ];
    check("workflow calls", keyed_bodies(fields, located), |body| {
        let queue = MemoryQueue::default();
        let outcome = block_on(accept_workflow(&keys, &queue, bearer(), &body, now));
        let status = workflow::CHECKS.reply(&outcome).0;
        prop_assert!([200, 400, 403].contains(&status), "{status}");
        prop_assert_eq!(queue.sent().len(), usize::from(status == 200));
        Ok(())
    });
}

#[test]
fn the_mapping_loader_never_panics_on_any_text_or_a_rearranged_mapping() {
    check("mapping text", ".{0,400}", |text| {
        let _ = Mapping::parse(&text, "arbitrary");
        Ok(())
    });
    let lines: Vec<String> = ghl_capi_tests::fixtures::mapping_text()
        .lines()
        .map(str::to_owned)
        .collect();
    let rearranged = prop::sample::subsequence(lines.clone(), 0..lines.len())
        .prop_shuffle()
        .prop_map(|lines| lines.join("\n"));
    check("rearranged mappings", rearranged, |text| {
        let _ = Mapping::parse(&text, "rearranged");
        Ok(())
    });
}

#[test]
fn normalisation_never_panics_and_is_idempotent_on_its_own_output() {
    let countries = prop::sample::select(vec![
        None,
        Some("US"),
        Some("DE"),
        Some("in"),
        Some("Germany"),
        Some("ZZ"),
    ]);
    let inputs = prop_oneof![
        ".{0,60}",
        "[ +()0-9-]{0,20}",
        "[A-Za-z0-9._%+-]{1,12}@[A-Za-z0-9-]{1,10}\\.[A-Za-z]{2,4}",
        "(19|20)[0-9]{2}-[01][0-9]-[0-3][0-9]",
    ];
    check(
        "normalize",
        (prop::sample::select(Field::ALL.to_vec()), inputs, countries),
        |(field, input, country)| {
            if let Some(once) = normalize(field, &input, country) {
                // A phone comes out as an international number's digits: read
                // again as one (not as a national number of `country`).
                let again = match field {
                    Field::Phone => format!("+{}", once.as_str()),
                    _ => once.as_str().to_owned(),
                };
                let twice = normalize(field, &again, country);
                prop_assert_eq!(
                    twice.as_ref().map(|n| n.as_str()),
                    Some(once.as_str()),
                    "{:?} {:?} ({:?}) gave {:?}",
                    field,
                    input,
                    country,
                    once.as_str()
                );
            }
            Ok(())
        },
    );
}
