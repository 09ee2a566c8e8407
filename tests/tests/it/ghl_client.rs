//! The GHL client against a local mock that checks the headers GHL requires.

use std::collections::HashMap;
use std::time::Duration;

use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::tokens::FixedTokens;
use ghl_capi::ghl::wire::LocationToken;
use ghl_capi::ghl::{GhlError, GhlReader, Related};
use ghl_capi::ports::secrets::{MemorySecrets, VersionedSecrets};
use ghl_capi_tests::fixtures;
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn client(server: &MockServer) -> GhlClient<FixedTokens> {
    let tokens = HashMap::from([("loc".to_owned(), LocationToken("pit-abc".into()))]);
    GhlClient::new(&server.uri(), FixedTokens(tokens), Duration::from_secs(5)).expect("client")
}

#[tokio::test]
async fn a_refused_token_is_refreshed_once_and_the_read_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/contacts/c1"))
        .and(header("authorization", "Bearer at-old"))
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(wiremock::matchers::body_string_contains(
            "grant_type=refresh_token",
        ))
        .and(wiremock::matchers::body_string_contains(
            "refresh_token=rt-old",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "at-new", "refresh_token": "rt-new", "expires_in": 86399,
            "userType": "Location", "locationId": "loc"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/contacts/c1"))
        .and(header("authorization", "Bearer at-new"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"contact": {"id": "c1"}})))
        .expect(1)
        .mount(&server)
        .await;
    let secrets = MemorySecrets::default();
    // Not due for refresh by its expiry: GHL's 401 is what triggers it.
    let set = json!({"access_token": "at-old", "refresh_token": "rt-old",
        "expires_at": (chrono::Utc::now() + chrono::Duration::hours(20)).to_rfc3339(),
        "user_type": "Location", "location_id": "loc"});
    secrets
        .put("ghl-capi/ghl/loc", &set.to_string())
        .await
        .expect("stored");
    let app = fixtures::app_in(&secrets, &server.uri()).await;
    let tokens = fixtures::tokens_in(secrets, Some(app));
    let ghl = GhlClient::new(&server.uri(), tokens, Duration::from_secs(5)).expect("client");
    let contact = ghl
        .contact("loc", "c1")
        .await
        .expect("found after one refresh");
    assert_eq!(contact.id, "c1");
}

#[tokio::test]
async fn a_contact_is_read_with_the_token_and_version_ghl_requires() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/contacts/c1"))
        .and(header("authorization", "Bearer pit-abc"))
        .and(header("version", "2021-07-28"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"contact": {
            "id": "c1", "email": "ann@example.com",
            "attributionSource": {"fbclid": "IwAR1", "url": "https://example.com"}
        }})))
        .expect(1)
        .mount(&server)
        .await;
    let contact = client(&server).contact("loc", "c1").await.expect("found");
    assert_eq!(contact.email.as_deref(), Some("ann@example.com"));
    assert_eq!(
        contact.attribution_source.and_then(|a| a.fbclid).as_deref(),
        Some("IwAR1")
    );
}

#[tokio::test]
async fn lists_are_unwrapped_and_appointments_come_as_events() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/contacts/c1/appointments"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"events": [{"id": "e1"}]})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/contacts/c1/notes"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"notes": [{"body": "hi"}]})))
        .mount(&server)
        .await;
    let ghl = client(&server);
    assert_eq!(
        ghl.related("loc", "c1", Related::Appointments)
            .await
            .expect("list"),
        json!([{"id": "e1"}])
    );
    assert_eq!(
        ghl.related("loc", "c1", Related::Notes)
            .await
            .expect("list"),
        json!([{"body": "hi"}])
    );
}

#[tokio::test]
async fn answers_map_to_what_enrichment_does_next() {
    let server = MockServer::start().await;
    Mock::given(path("/contacts/gone"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(path("/contacts/busy"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("X-RateLimit-Interval-Milliseconds", "10000")
                .insert_header("X-RateLimit-Remaining", "0"),
        )
        .mount(&server)
        .await;
    Mock::given(path("/contacts/denied"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"statusCode": 401, "message": "Invalid token"})),
        )
        .mount(&server)
        .await;
    Mock::given(path("/contacts/broken"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;
    let ghl = client(&server);
    assert_eq!(
        ghl.contact("loc", "gone").await.unwrap_err(),
        GhlError::NotFound
    );
    assert_eq!(
        ghl.contact("loc", "denied").await.unwrap_err(),
        GhlError::Unauthorized
    );
    assert!(matches!(
        ghl.contact("loc", "broken").await,
        Err(GhlError::Unavailable { .. })
    ));
    assert_eq!(
        ghl.contact("other-location", "c1").await.unwrap_err(),
        GhlError::NoToken {
            what: "location other-location".into()
        },
        "no token, no call"
    );
    assert_eq!(
        ghl.contact("loc", "../admin").await.unwrap_err(),
        GhlError::NotFound,
        "ids never rewrite the path"
    );
    // Last: GHL said no budget is left, so any later call would wait its window.
    assert_eq!(
        ghl.contact("loc", "busy").await.unwrap_err(),
        GhlError::RateLimited {
            retry_after_ms: 10_000
        }
    );
}

#[tokio::test]
async fn a_slow_ghl_is_a_timeout_to_retry_not_a_hung_function() {
    let server = MockServer::start().await;
    Mock::given(path("/contacts/c1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"contact": {"id": "c1"}}))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let tokens = HashMap::from([("loc".to_owned(), LocationToken("pit-abc".into()))]);
    let ghl = GhlClient::new(
        &server.uri(),
        FixedTokens(tokens),
        Duration::from_millis(300),
    )
    .expect("client");
    let started = std::time::Instant::now();
    assert!(matches!(
        ghl.contact("loc", "c1").await,
        Err(GhlError::Unavailable { .. })
    ));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn an_uninstall_webhook_retires_the_locations_tokens_unless_sent_before_its_install() {
    use ghl_capi::enrich::{Enriched, Enricher};
    use ghl_capi::ghl::tokens::TokenSource;
    use ghl_capi::hold::HoldPolicy;
    use ghl_capi::ports::secrets::SecretStore;
    use ghl_capi::ports::state::MemoryState;

    let now = chrono::Utc::now();
    let installed = now - chrono::Duration::minutes(10);
    let secrets = MemorySecrets::default();
    let set = json!({"access_token": "at-1", "refresh_token": "rt-1",
        "installed_at": installed.to_rfc3339()});
    secrets
        .put("ghl-capi/ghl/loc1", &set.to_string())
        .await
        .expect("stored");
    let tokens = fixtures::tokens_in(secrets, None);
    let ghl = GhlClient::new("http://127.0.0.1:9", tokens, Duration::from_secs(1)).expect("client");
    let mapping = ghl_capi::mapping::Mapping::builtin();
    let state = MemoryState::default();
    let uninstall =
        |id: &str, sent: chrono::DateTime<chrono::Utc>| ghl_capi::jobs::EnrichJob::Webhook {
            key: id.into(),
            received_at: now,
            body: json!({"type": "UNINSTALL", "appId": "app-1", "locationId": "loc1",
            "webhookId": id, "timestamp": sent.to_rfc3339()})
            .to_string(),
        };
    let client_tokens = ghl.tokens();
    // GHL's late retry of the uninstall before this install (or a job held since).
    for (job, retired) in [
        (
            uninstall("wh-old", installed - chrono::Duration::hours(1)),
            false,
        ),
        (uninstall("wh-un", now), true),
    ] {
        let outcome = Enricher::new(&mapping, &ghl, &state, HoldPolicy::default())
            .enrich(&job, now)
            .await;
        assert!(
            matches!(outcome, Enriched::Done { ref dispatch, ref dead_letters, .. } if dispatch.is_empty() && dead_letters.is_empty())
        );
        let token = client_tokens.token("loc1").await;
        if retired {
            // The client's token source now refuses the location, without asking GHL.
            assert_eq!(token.unwrap_err(), GhlError::Unauthorized);
        } else {
            assert_eq!(token.expect("the install stands").0, "at-1");
        }
    }
    let stored = client_tokens
        .secrets()
        .get("ghl-capi/ghl/loc1")
        .await
        .expect("kept for the record");
    assert!(stored.expose().contains("the app was uninstalled"));
}

#[tokio::test]
async fn ghls_error_bodies_become_named_rejections_and_its_budget_is_respected() {
    use ghl_capi::ghl::contacts_api::{Note, NoteInput};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/contacts/c1/notes"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "statusCode": 422, "message": ["body must be a string", "body should not be empty"],
            "error": "Unprocessable Entity"})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/contacts/c1/notes"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"notes": []}))
                .insert_header("X-RateLimit-Remaining", "0")
                .insert_header("X-RateLimit-Interval-Milliseconds", "700"),
        )
        .mount(&server)
        .await;
    let ghl = client(&server);
    let note = NoteInput {
        body: String::new(),
        user_id: None,
    };
    assert_eq!(
        ghl.create_record::<Note>("loc", "c1", &note)
            .await
            .unwrap_err(),
        GhlError::Rejected {
            status: 422,
            message: "body must be a string; body should not be empty".into()
        }
    );
    ghl.records::<Note>("loc", "c1").await.expect("listed");
    let started = std::time::Instant::now();
    ghl.records::<Note>("loc", "c1").await.expect("listed");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "no budget left: the second call waits for GHL's window"
    );
}

/// Versioned secrets that count the uncached, versioned reads.
#[derive(Default)]
struct Counting {
    inner: MemorySecrets,
    versioned_reads: std::sync::atomic::AtomicUsize,
}

impl ghl_capi::ports::secrets::SecretStore for Counting {
    async fn get(
        &self,
        name: &str,
    ) -> Result<ghl_capi::ports::secrets::Secret, ghl_capi::ports::secrets::SecretError> {
        self.inner.get(name).await
    }
    async fn fresh(
        &self,
        name: &str,
    ) -> Result<ghl_capi::ports::secrets::Secret, ghl_capi::ports::secrets::SecretError> {
        self.inner.fresh(name).await
    }
}

impl VersionedSecrets for Counting {
    async fn current(
        &self,
        name: &str,
    ) -> Result<Option<ghl_capi::ports::secrets::Versioned>, ghl_capi::ports::secrets::SecretError>
    {
        self.versioned_reads
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.current(name).await
    }
    async fn pending(
        &self,
        name: &str,
    ) -> Result<Option<ghl_capi::ports::secrets::Versioned>, ghl_capi::ports::secrets::SecretError>
    {
        self.inner.pending(name).await
    }
    async fn stage_pending(
        &self,
        name: &str,
        value: &str,
    ) -> Result<String, ghl_capi::ports::secrets::SecretError> {
        self.inner.stage_pending(name, value).await
    }
    async fn promote(
        &self,
        name: &str,
        version: &str,
        previous: &str,
    ) -> Result<bool, ghl_capi::ports::secrets::SecretError> {
        self.inner.promote(name, version, previous).await
    }
    async fn put(
        &self,
        name: &str,
        value: &str,
    ) -> Result<String, ghl_capi::ports::secrets::SecretError> {
        self.inner.put(name, value).await
    }
}

#[tokio::test]
async fn a_token_that_is_not_due_is_served_without_a_versioned_read() {
    use ghl_capi::ghl::tokens::TokenSource;
    let secrets = Counting::default();
    let set = json!({"access_token": "at-1", "refresh_token": "rt-1",
        "expires_at": (chrono::Utc::now() + chrono::Duration::hours(20)).to_rfc3339()});
    secrets
        .put("ghl-capi/ghl/loc", &set.to_string())
        .await
        .expect("stored");
    let tokens = fixtures::tokens_in(secrets, None);
    for _ in 0..3 {
        assert_eq!(tokens.token("loc").await.expect("token").0, "at-1");
    }
    assert_eq!(
        tokens
            .secrets()
            .versioned_reads
            .load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the hot path reads through the store's cache"
    );
}

/// `verify`'s scope check asks for `contacts.write` only of a mapping whose
/// rules write back into GHL, and names it when the token lacks it.
#[tokio::test]
async fn verify_wants_contacts_write_only_when_a_rule_writes_back() {
    use ghl_capi::ops::credentials::ghl_location;
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/contacts/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"contacts": []})))
        .mount(&server)
        .await;
    let ghl = client(&server);
    let plain = fixtures::mapping();
    let writing = ghl_capi::mapping::Mapping::parse(
        &fixtures::writing_back(&fixtures::mapping_text()),
        "mapping.toml",
    )
    .expect("mapping");
    let read_only = Some("contacts.readonly opportunities.readonly");
    // Its fields by key want the names' scopes too.
    let names = "opportunities.readonly locations/customFields.readonly calendars.readonly";
    let granted = format!("contacts.readonly contacts.write {names}");
    let found = ghl_location(&ghl, &plain, "loc", read_only).await;
    assert!(found.ok, "{found:?}");
    let found = ghl_location(&ghl, &writing, "loc", read_only).await;
    assert!(
        !found.ok
            && found.detail.contains(
                "scopes contacts.write, locations/customFields.readonly, calendars.readonly are missing"
            ),
        "{found:?}"
    );
    let found = ghl_location(&ghl, &writing, "loc", Some(&granted)).await;
    assert!(
        found.ok && found.detail.contains("scopes cover the mapping"),
        "{found:?}"
    );
}

#[tokio::test]
async fn a_record_answer_without_its_key_is_unreadable_and_a_list_without_it_is_empty() {
    use ghl_capi::ghl::contacts_api::{Note, Task};
    let server = MockServer::start().await;
    let answer = |path_: &str, body: serde_json::Value| {
        Mock::given(method("GET"))
            .and(path(path_.to_owned()))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
    };
    // GHL's lists come wrapped in the kind's key; an answer without it, or with
    // it null, has none to list.
    answer("/contacts/c1/tasks", json!({"traceId": "t-1"}))
        .mount(&server)
        .await;
    answer("/contacts/c1/notes", json!({"notes": null}))
        .mount(&server)
        .await;
    // One record without its key (here, under the other kind's) is no record.
    answer("/contacts/c1/tasks/t1", json!({"note": {"id": "t1"}}))
        .mount(&server)
        .await;
    let ghl = client(&server);
    assert_eq!(ghl.records::<Task>("loc", "c1").await, Ok(vec![]));
    assert_eq!(ghl.records::<Note>("loc", "c1").await, Ok(vec![]));
    let err = ghl
        .record::<Task>("loc", ("c1", "t1"))
        .await
        .expect_err("no task in the answer");
    assert!(
        matches!(
            err,
            GhlError::Unavailable {
                context: "unreadable answer",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_answer_that_does_not_read_is_said_without_its_values() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/contacts/c1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"contact": {"id": "c1", "tags": "jane@example.com, expected +1 650 555 1212"}}),
        ))
        .mount(&server)
        .await;
    let err = client(&server)
        .contact("loc", "c1")
        .await
        .expect_err("tags are a list");
    // The error is logged with the job's ids: what did not read, never the value.
    let said = format!("{err}");
    assert!(
        said.contains("unreadable answer") && said.contains("expected"),
        "{said}"
    );
    assert!(!said.contains("jane") && !said.contains("555"), "{said}");
}
