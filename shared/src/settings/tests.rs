//! Each function's settings from its environment: what is required, defaulted, refused.

use std::collections::HashMap;

use super::env::is_api_version;
use super::*;

/// The fixture mapping every test shares.
const MAPPING: &str = include_str!("../../../tests/fixtures/mapping.toml");

fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| vars.get(name).cloned()
}

#[test]
fn the_marketplace_app_needs_its_app_id_so_other_apps_webhooks_are_told_apart() {
    let base = [
        ("ENRICH_QUEUE_URL", "https://sqs/q"),
        ("GHL_APP_SECRET", "stack/ghl-app"),
        ("STATE_TABLE", "stack-state"),
    ];
    let err = IntakeSettings::from_lookup(lookup(&base)).expect_err("refused");
    assert!(err.to_string().contains("GHL_APP_ID"), "{err}");
    let mut with_id = base.to_vec();
    with_id.push(("GHL_APP_ID", "app-1,app-2"));
    let settings = IntakeSettings::from_lookup(lookup(&with_id)).expect("settings");
    assert_eq!(settings.apps, AppIds::parse("app-1 app-2"));
    assert!(
        settings.ghl_company_ids.is_empty(),
        "no marketplace-started install"
    );
    with_id.push(("GHL_COMPANY_ID", " co-1, co-2 ,"));
    let settings = IntakeSettings::from_lookup(lookup(&with_id)).expect("settings");
    assert_eq!(settings.ghl_company_ids, ["co-1", "co-2"]);
}

#[test]
fn every_missing_variable_is_named_at_once() {
    let err = EnrichSettings::from_lookup(lookup(&[("MAPPING_TOML", MAPPING)])).unwrap_err();
    let text = err.to_string();
    for name in [
        "STATE_TABLE",
        "ENRICH_QUEUE_URL",
        "DISPATCH_QUEUE_URL",
        "DEAD_LETTER_QUEUE_URL",
    ] {
        assert!(text.contains(name), "{text}");
    }
    let err = DispatchSettings::from_lookup(lookup(&[
        ("GRAPH_API_VERSION", "25"),
        ("HTTP_TIMEOUT_SECONDS", "soon"),
        ("HOLD_BASE_MS", "0"),
    ]))
    .unwrap_err();
    assert_eq!(err.0.len(), 7, "{err}");
    assert!(err.to_string().contains("names no pixel"), "{err}");
}

#[test]
fn defaults_fill_what_is_optional() {
    let s = DispatchSettings::from_lookup(lookup(&[
        ("MAPPING_TOML", MAPPING),
        ("DISPATCH_QUEUE_URL", "http://q/dispatch"),
        ("DEAD_LETTER_QUEUE_URL", "http://q/dead"),
        ("STATE_TABLE", "state"),
    ]))
    .expect("valid");
    assert_eq!(s.capi_version, "v26.0");
    assert_eq!(s.hold, HoldPolicy::default());
    assert_eq!(s.capi_base_url, "https://graph.facebook.com");
    assert_eq!(s.http_timeout, Duration::from_secs(10));
    assert_eq!(s.mapping.configured.pixels[0].dataset_id, "1234567890");
    assert_eq!(
        (&s.mapping.published, s.mapping.every),
        (&None, Duration::from_secs(30))
    );

    let s = EnrichSettings::from_lookup(lookup(&[
        ("MAPPING_TOML", MAPPING),
        ("STATE_TABLE", "state"),
        ("ENRICH_QUEUE_URL", "http://q/enrich.fifo"),
        ("DISPATCH_QUEUE_URL", "http://q/dispatch"),
        ("DEAD_LETTER_QUEUE_URL", "http://q/dead"),
        ("GHL_API_BASE_URL", "http://127.0.0.1:4010"),
    ]))
    .expect("valid");
    assert_eq!(s.ghl.base_url, "http://127.0.0.1:4010");
    assert_eq!(s.ghl.token_prefix, "ghl-capi/ghl/");

    // Published on S3, looked at as often as told.
    let s = DispatchSettings::from_lookup(lookup(&[
        ("DISPATCH_QUEUE_URL", "http://q/dispatch"),
        ("DEAD_LETTER_QUEUE_URL", "http://q/dead"),
        ("STATE_TABLE", "state"),
        ("MAPPING_BUCKET", "mappings"),
        ("MAPPING_REFRESH_SECONDS", "5"),
    ]))
    .expect("valid");
    let at = s.mapping.published.expect("published");
    assert_eq!(
        (at.bucket.as_str(), at.key.as_str()),
        ("mappings", "mapping.toml")
    );
    assert_eq!(s.mapping.every, Duration::from_secs(5));

    let s = IntakeSettings::from_lookup(lookup(&[("ENRICH_QUEUE_URL", "http://q/e.fifo")]))
        .expect("valid");
    assert!(!s.keys.accepts_legacy_rsa() && s.conversion_keys_secret.is_none());
}

#[test]
fn a_broken_mapping_or_key_is_reported_with_its_place() {
    let err = EnrichSettings::from_lookup(lookup(&[("MAPPING_TOML", "[[rules]]\nname = 1\n")]))
        .unwrap_err();
    assert!(err.to_string().contains("MAPPING_TOML:"), "{err}");
    let err = IntakeSettings::from_lookup(lookup(&[
        ("ENRICH_QUEUE_URL", "http://q/e.fifo"),
        ("GHL_WEBHOOK_ED25519_PUBLIC_KEY", "not a key"),
    ]))
    .unwrap_err();
    assert!(
        err.to_string().contains("GHL_WEBHOOK_ED25519_PUBLIC_KEY"),
        "{err}"
    );
}

#[test]
fn api_versions_look_like_v_major_minor() {
    assert!(is_api_version("v25.0") && is_api_version("v19.12"));
    for bad in ["25.0", "v25", "v.0", "v25.x", ""] {
        assert!(!is_api_version(bad), "{bad}");
    }
}

#[test]
fn ghls_budget_is_shared_as_set_and_a_bad_share_or_cache_is_named() {
    let base = [
        ("MAPPING_TOML", MAPPING),
        ("STATE_TABLE", "state"),
        ("ENRICH_QUEUE_URL", "http://q/enrich.fifo"),
        ("DISPATCH_QUEUE_URL", "http://q/dispatch"),
        ("DEAD_LETTER_QUEUE_URL", "http://q/dead"),
    ];
    let s = EnrichSettings::from_lookup(lookup(&base)).expect("valid");
    assert_eq!(s.ghl.budget, GhlBudget::default());
    assert_eq!(
        (s.ghl.budget.enrichment_share, s.ghl.budget.contact_cache),
        (0.8, Duration::from_secs(60))
    );
    let mut set = base.to_vec();
    set.extend([
        ("GHL_ENRICHMENT_SHARE_PERCENT", "95"),
        ("GHL_CONTACT_CACHE_SECONDS", "0"),
    ]);
    let s = EnrichSettings::from_lookup(lookup(&set)).expect("valid");
    assert_eq!(
        (s.ghl.budget.enrichment_share, s.ghl.budget.contact_cache),
        (0.95, Duration::ZERO),
        "0 turns the cache off"
    );
    let mut bad = base.to_vec();
    bad.extend([
        ("GHL_ENRICHMENT_SHARE_PERCENT", "150"),
        ("GHL_CONTACT_CACHE_SECONDS", "a minute"),
    ]);
    let err = EnrichSettings::from_lookup(lookup(&bad)).expect_err("refused");
    let text = err.to_string();
    for name in ["GHL_ENRICHMENT_SHARE_PERCENT", "GHL_CONTACT_CACHE_SECONDS"] {
        assert!(text.contains(name), "{text}");
    }
}
