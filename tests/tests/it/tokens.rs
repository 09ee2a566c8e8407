//! Managed token sets against a GHL stand-in: what GHL's refusals retire (only a
//! dead grant), how often a refused token is refreshed (once per version), and
//! that no write overwrites a rotation it did not see.

use std::time::Duration;

use futures_util::FutureExt;
use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::oauth::TokenSet;
use ghl_capi::ghl::tokens::{ManagedTokens, TokenSource};
use ghl_capi::ghl::{GhlError, GhlReader};
use ghl_capi::ports::lease::MemoryLease;
use ghl_capi::ports::secrets::{MemorySecrets, SecretStore, VersionedSecrets};
use ghl_capi::ports::state::MemoryState;
use ghl_capi_tests::fixtures::{self, APP_SECRET};
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const SECRET: &str = "ghl-capi/ghl/loc";

type Tokens = ManagedTokens<MemorySecrets, MemoryLease, MemoryState>;

/// The location's set (`due`: its access token expires now), and its tokens.
async fn tokens(server: &MockServer, due: bool) -> (Tokens, MemorySecrets) {
    tokens_with(server, due, MemoryLease::default(), Duration::from_secs(5)).await
}

/// As [`tokens`], with `lease`, and GHL's answers waited for `timeout`.
async fn tokens_with<L: ghl_capi::ports::lease::Lease>(
    server: &MockServer,
    due: bool,
    lease: L,
    timeout: Duration,
) -> (ManagedTokens<MemorySecrets, L, MemoryState>, MemorySecrets) {
    let secrets = MemorySecrets::default();
    let expires = chrono::Utc::now() + chrono::Duration::hours(if due { 0 } else { 20 });
    let set = json!({"access_token": "at-old", "refresh_token": "rt-old",
        "expires_at": expires.to_rfc3339(), "user_type": "Location", "location_id": "loc"});
    secrets.put(SECRET, &set.to_string()).await.expect("stored");
    let mut app = fixtures::app_in(&secrets, &server.uri()).await;
    app.timeout = timeout;
    let tokens = ManagedTokens::new(
        secrets.clone(),
        lease,
        MemoryState::default(),
        Some(app),
        "ghl-capi/ghl/",
    );
    (tokens, secrets)
}

async fn stored(secrets: &MemorySecrets) -> TokenSet {
    TokenSet::parse(secrets.get(SECRET).await.expect("stored").expose()).expect("a set")
}

async fn token_endpoint(server: &MockServer, status: u16, body: Value, calls: u64) {
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .expect(calls)
        .mount(server)
        .await;
}

#[tokio::test]
async fn only_ghls_refusal_of_the_grant_itself_retires_a_location() {
    for (body, retired) in [
        (
            json!({"error": "invalid_grant", "error_description": "refresh token is invalid"}),
            true,
        ),
        (
            json!({"statusCode": 400, "message": "Location is not active"}),
            false,
        ),
        (
            json!({"error": "invalid_client", "message": "Invalid client credentials"}),
            false,
        ),
    ] {
        let server = MockServer::start().await;
        token_endpoint(&server, 400, body.clone(), 1).await;
        let (tokens, secrets) = tokens(&server, true).await;
        let refused = tokens.token("loc").await.expect_err("refused");
        assert_eq!(
            stored(&secrets).await.needs_reinstall.is_some(),
            retired,
            "{body}: {refused:?}"
        );
        if body["error"] == "invalid_client" {
            assert!(
                matches!(refused, GhlError::AppRefused { .. }),
                "{refused:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_refused_app_secret_is_read_again_so_a_fixed_one_works_without_a_restart() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(body_string_contains("client_secret=shh"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(body_string_contains("client_secret=fixed"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "at-new", "refresh_token": "rt-new", "expires_in": 86399})))
        .expect(1)
        .mount(&server)
        .await;
    let (tokens, secrets) = tokens(&server, true).await;
    assert!(matches!(
        tokens.token("loc").await,
        Err(GhlError::AppRefused { .. })
    ));
    let fixed = json!({"client_id": "app-1", "client_secret": "fixed"});
    secrets
        .put(APP_SECRET, &fixed.to_string())
        .await
        .expect("fixed");
    assert_eq!(tokens.token("loc").await.expect("refreshed").0, "at-new");
    assert_eq!(
        stored(&secrets).await.refresh_token.as_deref(),
        Some("rt-new")
    );
}

#[tokio::test]
async fn a_refused_token_is_refreshed_once_per_version_and_a_missing_scope_never() {
    let server = MockServer::start().await;
    let invalid = json!({"statusCode": 401, "message": "Invalid token: access token is invalid"});
    Mock::given(method("GET"))
        .and(path("/contacts/c1"))
        .respond_with(ResponseTemplate::new(401).set_body_json(invalid))
        .mount(&server)
        .await;
    let scope =
        json!({"statusCode": 401, "message": "The token is not authorized for this scope."});
    Mock::given(method("GET"))
        .and(path("/contacts/c2"))
        .and(header("authorization", "Bearer at-new"))
        .respond_with(ResponseTemplate::new(401).set_body_json(scope))
        .mount(&server)
        .await;
    // One rotation in all, though every read below is refused.
    token_endpoint(
        &server,
        200,
        json!({"access_token": "at-new", "refresh_token": "rt-new", "expires_in": 86399}),
        1,
    )
    .await;
    let (tokens, secrets) = tokens(&server, false).await;
    let ghl = GhlClient::new(&server.uri(), tokens, Duration::from_secs(5)).expect("client");
    for _ in 0..3 {
        assert_eq!(
            ghl.contact("loc", "c1").await.unwrap_err(),
            GhlError::Unauthorized
        );
    }
    let missing = ghl.contact("loc", "c2").await.unwrap_err();
    assert!(
        matches!(&missing, GhlError::Forbidden { message, .. } if message.contains("scope")),
        "{missing:?}"
    );
    assert!(
        stored(&secrets).await.after_refusal,
        "the new version came of a refusal"
    );
}

/// The token endpoint as another process's rotation races it: just before it
/// refuses this refresh, the other process's new version becomes current.
struct RotatedMeanwhile(MemorySecrets);

impl Respond for RotatedMeanwhile {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let theirs = json!({"access_token": "at-theirs", "refresh_token": "rt-theirs",
            "expires_at": (chrono::Utc::now() + chrono::Duration::hours(20)).to_rfc3339()});
        // The memory store never waits: its future is ready at once.
        self.0
            .put(SECRET, &theirs.to_string())
            .now_or_never()
            .expect("ready")
            .expect("stored");
        ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"}))
    }
}

#[tokio::test]
async fn a_refusal_never_retires_a_rotation_it_did_not_see() {
    let server = MockServer::start().await;
    let (tokens, secrets) = tokens(&server, true).await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(RotatedMeanwhile(secrets.clone()))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(tokens.token("loc").await.expect("theirs").0, "at-theirs");
    let set = stored(&secrets).await;
    assert_eq!(
        (set.access_token.as_str(), set.needs_reinstall),
        ("at-theirs", None),
        "their rotation stands"
    );
    assert!(tokens.uninstalled(Some("loc"), None, None).await.is_ok());
    assert!(
        stored(&secrets).await.needs_reinstall.is_some(),
        "an uninstall retires what is current"
    );
}

#[tokio::test]
async fn a_rotated_refresh_token_is_kept_from_an_answer_of_any_shape_even_cut_short() {
    for answer in [
        // Fields of unexpected shapes: GHL's rotation must survive them.
        json!({"access_token": "at-new", "refresh_token": "rt-new", "expires_in": 86399.5,
            "approvedLocations": null, "userType": "Location"})
        .to_string(),
        // A body cut short on the way: the tokens in it are kept all the same.
        r#"{"access_token":"at-new","token_type":"Bearer","refresh_token":"rt-new","expi"#
            .to_owned(),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/oauth/token"))
            .and(body_string_contains("refresh_token=rt-old"))
            .respond_with(ResponseTemplate::new(200).set_body_string(answer.clone()))
            .expect(1)
            .mount(&server)
            .await;
        let (tokens, secrets) = tokens(&server, true).await;
        assert_eq!(tokens.token("loc").await.expect("refreshed").0, "at-new");
        let set = stored(&secrets).await;
        assert_eq!(set.refresh_token.as_deref(), Some("rt-new"), "{answer}");
        assert!(!set.held());
    }
}

/// GHL rotating the refresh token it is given: the first use of `rt-old` is
/// answered too late (the client has given up), later uses are refused.
struct RotatesThenRefuses(std::sync::atomic::AtomicU32);

impl Respond for RotatesThenRefuses {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        if self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            ResponseTemplate::new(200)
                .set_body_json(
                    json!({"access_token": "at-lost", "refresh_token": "rt-lost",
                    "expires_in": 86399}),
                )
                .set_delay(Duration::from_secs(2))
        } else {
            ResponseTemplate::new(400).set_body_json(
                json!({"error": "invalid_grant", "error_description": "refresh token is invalid"}),
            )
        }
    }
}

#[tokio::test]
async fn a_refused_grant_after_a_lost_answer_holds_the_location_and_says_so_instead_of_retiring_it()
{
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(RotatesThenRefuses(Default::default()))
        .expect(2)
        .mount(&server)
        .await;
    let (tokens, secrets) = tokens_with(
        &server,
        true,
        MemoryLease::default(),
        Duration::from_millis(300),
    )
    .await;
    // The answer is lost: unknown whether GHL rotated; said so on the set.
    assert!(matches!(
        tokens.token("loc").await,
        Err(GhlError::Unavailable { .. })
    ));
    let unsure = stored(&secrets).await;
    assert!(unsure.unsure_since.is_some() && !unsure.held());
    // The kept token is tried, and GHL refuses it: held, not retired.
    assert_eq!(
        tokens.token("loc").await.err(),
        Some(GhlError::Unauthorized)
    );
    let held = stored(&secrets).await;
    assert_eq!(
        held.needs_reinstall, None,
        "not retired on GHL's word alone"
    );
    let lost = held.refresh_lost.expect("said why it is held");
    assert!(
        lost.contains("answer was lost") && lost.contains("Install the app again"),
        "{lost}"
    );
    // Held: GHL is not asked again (`expect(2)` above).
    assert_eq!(
        tokens.token("loc").await.err(),
        Some(GhlError::Unauthorized)
    );
}

/// A lease another process takes over once this one holds it: the first
/// acquisition is granted, every later one (a renewal) refused.
#[derive(Default)]
struct TakenOver(std::sync::atomic::AtomicU32);

impl ghl_capi::ports::lease::Lease for TakenOver {
    async fn acquire(
        &self,
        _: &str,
        _: &str,
        _: Duration,
    ) -> Result<bool, ghl_capi::ports::lease::LeaseError> {
        Ok(self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0)
    }

    async fn release(&self, _: &str, _: &str) -> Result<(), ghl_capi::ports::lease::LeaseError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_refresh_that_lost_its_lease_stops_before_asking_ghl() {
    let server = MockServer::start().await;
    // Another process holds the lease now, with the same refresh token: this one
    // must not send it too.
    token_endpoint(
        &server,
        200,
        json!({"access_token": "at-2", "refresh_token": "rt-2"}),
        0,
    )
    .await;
    let (tokens, secrets) =
        tokens_with(&server, true, TakenOver::default(), Duration::from_secs(5)).await;
    assert!(matches!(
        tokens.token("loc").await,
        Err(GhlError::Unavailable { .. })
    ));
    assert_eq!(
        stored(&secrets).await.refresh_token.as_deref(),
        Some("rt-old"),
        "nothing written: the other process's refresh stands"
    );
}
