//! The GHL token lifecycle on AWS's terms: token sets in Secrets Manager, leases in
//! DynamoDB (both in a real `moto_server`), GHL's token endpoint mocked. Many
//! processes, one refresh; a crash after GHL answered loses nothing; a refused
//! refresh marks the location for re-install instead of retrying forever.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ghl_capi::ghl::GhlError;
use ghl_capi::ghl::oauth::TokenSet;
use ghl_capi::ghl::tokens::{App, ManagedTokens, TokenSource};
use ghl_capi::ports::lease::Lease;
use ghl_capi::ports::secrets::{Secret, SecretError, SecretStore, Versioned, VersionedSecrets};
use ghl_capi_aws::dynamo::{DynamoLease, DynamoState};
use ghl_capi_aws::secrets::SecretsManager;
use ghl_capi_tests::fixtures::APP_SECRET;
use ghl_capi_tests::unique;
use serde_json::json;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn table(client: &aws_sdk_dynamodb::Client) -> String {
    ghl_capi_tests::moto::state_table(client).await
}

/// A token set that expired a minute ago.
fn expired() -> String {
    json!({"access_token": "at-old", "refresh_token": "rt-old",
        "expires_at": (Utc::now() - chrono::Duration::minutes(1)).to_rfc3339(),
        "user_type": "Location", "location_id": "loc1"})
    .to_string()
}

/// The test app, against `server`, its credentials in the setup's secrets.
fn app(server: &MockServer) -> App {
    App {
        secret: APP_SECRET.into(),
        base_url: server.uri(),
        timeout: Duration::from_secs(5),
    }
}

async fn token_endpoint(server: &MockServer, delay_ms: u64, calls: u64) {
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .and(body_string_contains("refresh_token=rt-old"))
        .and(body_string_contains("client_id=app-1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "at-new", "refresh_token": "rt-new",
                    "expires_in": 86399, "userType": "Location", "locationId": "loc1"}))
                .set_delay(Duration::from_millis(delay_ms)),
        )
        .expect(calls)
        .mount(server)
        .await;
}

struct Setup {
    secrets: aws_sdk_secretsmanager::Client,
    dynamo: aws_sdk_dynamodb::Client,
    table: String,
    prefix: String,
}

impl Setup {
    async fn new() -> Setup {
        let dynamo = ghl_capi_tests::moto_client!(aws_sdk_dynamodb);
        let secrets = ghl_capi_tests::moto_client!(aws_sdk_secretsmanager);
        let table = table(&dynamo).await;
        let prefix = format!("{}/ghl/", unique("tok"));
        ghl_capi_tests::moto::secret(&secrets, &format!("{prefix}loc1"), &expired()).await;
        let app = ghl_capi_tests::fixtures::oauth_app();
        let credentials =
            serde_json::json!({"client_id": app.client_id, "client_secret": app.client_secret});
        // One app secret for all: created once, kept as it is afterwards.
        let _ = secrets
            .create_secret()
            .name(APP_SECRET)
            .secret_string(credentials.to_string())
            .send()
            .await;
        Setup {
            secrets,
            dynamo,
            table,
            prefix,
        }
    }

    /// One process's view: its own cache, its own lease owner id.
    fn process(
        &self,
        server: &MockServer,
    ) -> ManagedTokens<SecretsManager, DynamoLease, DynamoState> {
        ManagedTokens::new(
            SecretsManager::new(self.secrets.clone(), Duration::from_secs(60)),
            DynamoLease::new(self.dynamo.clone(), &self.table),
            DynamoState::new(self.dynamo.clone(), &self.table),
            Some(app(server)),
            self.prefix.clone(),
        )
    }

    /// A process that dies once, `at` that step of a refresh.
    fn dying(
        &self,
        server: &MockServer,
        at: Death,
    ) -> ManagedTokens<Dying, DynamoLease, DynamoState> {
        ManagedTokens::new(
            Dying {
                inner: SecretsManager::new(self.secrets.clone(), Duration::from_secs(60)),
                at,
                died: Default::default(),
            },
            DynamoLease::new(self.dynamo.clone(), &self.table),
            DynamoState::new(self.dynamo.clone(), &self.table),
            Some(app(server)),
            self.prefix.clone(),
        )
    }

    async fn stored(&self) -> TokenSet {
        let text = self
            .secrets
            .get_secret_value()
            .secret_id(format!("{}loc1", self.prefix))
            .version_stage("AWSCURRENT")
            .send()
            .await
            .expect("read")
            .secret_string
            .expect("text");
        TokenSet::parse(&text).expect("token set")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_processes_with_an_expired_token_cause_one_refresh_and_all_get_the_new_token() {
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let server = MockServer::start().await;
    token_endpoint(&server, 500, 1).await;
    let setup = Setup::new().await;
    let processes: Vec<_> = (0..50).map(|_| Arc::new(setup.process(&server))).collect();
    let tasks: Vec<_> = processes
        .iter()
        .map(|p| {
            let p = Arc::clone(p);
            tokio::spawn(async move { p.token("loc1").await })
        })
        .collect();
    for task in tasks {
        let token = task.await.expect("joined").expect("a token");
        assert_eq!(token.0, "at-new");
    }
    let stored = setup.stored().await;
    assert_eq!(
        stored.refresh_token.as_deref(),
        Some("rt-new"),
        "the new refresh token is kept"
    );
    assert!(
        stored
            .expires_at
            .is_some_and(|at| at > Utc::now() + chrono::Duration::hours(23))
    );
    // wiremock checks on drop that the token endpoint was called exactly once.
}

/// Where a process dies, once, in the middle of a refresh.
#[derive(Clone, Copy, PartialEq)]
enum Death {
    /// With GHL's answer in hand, before writing it.
    BeforeWriting,
    /// After writing it as pending, before making it current.
    BeforePromoting,
}

/// Secrets Manager, failing once at the step where the process dies.
struct Dying {
    inner: SecretsManager,
    at: Death,
    died: std::sync::atomic::AtomicBool,
}

impl Dying {
    fn dies_here(&self, step: Death) -> Result<(), SecretError> {
        if step == self.at && !self.died.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(SecretError::unavailable("token", "the process died here"));
        }
        Ok(())
    }
}

impl SecretStore for Dying {
    async fn get(&self, name: &str) -> Result<Secret, SecretError> {
        self.inner.get(name).await
    }
    async fn fresh(&self, name: &str) -> Result<Secret, SecretError> {
        self.inner.fresh(name).await
    }
}

impl VersionedSecrets for Dying {
    async fn current(&self, name: &str) -> Result<Option<Versioned>, SecretError> {
        self.inner.current(name).await
    }
    async fn pending(&self, name: &str) -> Result<Option<Versioned>, SecretError> {
        self.inner.pending(name).await
    }
    async fn stage_pending(&self, name: &str, value: &str) -> Result<String, SecretError> {
        self.dies_here(Death::BeforeWriting)?;
        self.inner.stage_pending(name, value).await
    }
    async fn promote(
        &self,
        name: &str,
        version: &str,
        previous: &str,
    ) -> Result<bool, SecretError> {
        self.dies_here(Death::BeforePromoting)?;
        self.inner.promote(name, version, previous).await
    }
    async fn put(&self, name: &str, value: &str) -> Result<String, SecretError> {
        self.inner.put(name, value).await
    }
}

#[tokio::test]
async fn a_crash_after_ghl_answered_is_finished_by_the_next_process_without_a_second_refresh() {
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let server = MockServer::start().await;
    token_endpoint(&server, 0, 1).await;
    let setup = Setup::new().await;
    let dying = setup.dying(&server, Death::BeforePromoting);
    assert!(matches!(
        dying.token("loc1").await,
        Err(GhlError::Unavailable { .. })
    ));
    assert_eq!(
        setup.stored().await.refresh_token.as_deref(),
        Some("rt-old"),
        "the refresh was written, not yet made current"
    );

    // The next process (the dead one's lease ran out or was given back) finds the
    // written refresh and finishes it: GHL is not asked again.
    let token = setup.process(&server).token("loc1").await.expect("a token");
    assert_eq!(token.0, "at-new");
    let stored = setup.stored().await;
    assert_eq!(stored.refresh_token.as_deref(), Some("rt-new"));
}

#[tokio::test]
async fn a_crash_before_the_write_is_refreshed_again_with_the_refresh_token_still_current() {
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    // If GHL keeps a used refresh token valid, the second refresh works (this
    // test); if it retires it, GHL refuses and the location is marked for
    // re-install (the next test). Either way nothing is lost silently.
    let server = MockServer::start().await;
    token_endpoint(&server, 0, 2).await;
    let setup = Setup::new().await;
    let dying = setup.dying(&server, Death::BeforeWriting);
    assert!(matches!(
        dying.token("loc1").await,
        Err(GhlError::Unavailable { .. })
    ));
    assert_eq!(
        setup.stored().await.refresh_token.as_deref(),
        Some("rt-old")
    );
    let token = setup.process(&server).token("loc1").await.expect("a token");
    assert_eq!(token.0, "at-new");
    assert_eq!(
        setup.stored().await.refresh_token.as_deref(),
        Some("rt-new")
    );
}

#[tokio::test]
async fn a_dead_grant_marks_the_location_for_reinstall_and_is_not_retried() {
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let emf = crate::common::Emf::start();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": "invalid_grant", "message": "Invalid grant: refresh token is invalid"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let setup = Setup::new().await;
    let process = setup.process(&server);
    assert_eq!(
        process.token("loc1").await.unwrap_err(),
        GhlError::Unauthorized
    );
    let stored = setup.stored().await;
    assert!(
        stored
            .needs_reinstall
            .as_deref()
            .is_some_and(|r| r.contains("refresh token is invalid")),
        "{:?}",
        stored.needs_reinstall
    );
    // Later callers, in this process or another, do not hammer GHL.
    for p in [process, setup.process(&server)] {
        assert_eq!(p.token("loc1").await.unwrap_err(), GhlError::Unauthorized);
    }
    assert_eq!(emf.count("TokenRefreshes", &[("Result", "refused")]), 1.0);
    assert_eq!(emf.count("GhlUnauthorized", &[]), 1.0, "the alarm's metric");
}

#[tokio::test]
async fn a_lease_is_held_by_one_owner_renewed_by_it_until_given_back_or_run_out() {
    let dynamo = ghl_capi_tests::moto_client!(aws_sdk_dynamodb);
    let lease = DynamoLease::new(dynamo.clone(), table(&dynamo).await);
    // Long enough that a slow moto (tests share it) does not run it out early.
    let hold = Duration::from_millis(1500);
    assert!(lease.acquire("l", "a", hold).await.expect("acquire"));
    assert!(!lease.acquire("l", "b", hold).await.expect("acquire"));
    lease
        .release("l", "b")
        .await
        .expect("a stranger's release is a no-op");
    assert!(!lease.acquire("l", "b", hold).await.expect("acquire"));
    // Its holder renews it: still held past the first hold.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(lease.acquire("l", "a", hold).await.expect("renewed"));
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(
        !lease.acquire("l", "b", hold).await.expect("acquire"),
        "renewed, so still held"
    );
    lease.release("l", "a").await.expect("released");
    assert!(lease.acquire("l", "b", hold).await.expect("acquire"));
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert!(
        lease.acquire("l", "c", hold).await.expect("acquire"),
        "a lease that ran out is free"
    );
}

#[tokio::test]
async fn the_scheduled_refresh_renews_what_expires_soon_and_leaves_the_rest() {
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let emf = crate::common::Emf::start();
    let server = MockServer::start().await;
    token_endpoint(&server, 0, 1).await;
    let setup = Setup::new().await;
    let soon = json!({"access_token": "at-old", "refresh_token": "rt-old",
        "expires_at": (Utc::now() + chrono::Duration::minutes(30)).to_rfc3339(),
        "user_type": "Location", "location_id": "loc1"});
    let later = json!({"access_token": "at-2", "refresh_token": "rt-2",
        "expires_at": (Utc::now() + chrono::Duration::hours(20)).to_rfc3339()});
    let app = format!("{}app", setup.prefix.trim_end_matches("ghl/"));
    for (name, value) in [
        (format!("{}loc2", setup.prefix), later.to_string()),
        (format!("{}loc3", setup.prefix), "pit-fixed".to_owned()),
        (
            app.clone(),
            json!({"client_id": "app-1", "client_secret": "shh"}).to_string(),
        ),
    ] {
        ghl_capi_tests::moto::secret(&setup.secrets, &name, &value).await;
    }
    setup
        .secrets
        .put_secret_value()
        .secret_id(format!("{}loc1", setup.prefix))
        .secret_string(soon.to_string())
        .send()
        .await
        .expect("due soon");
    let vars = std::collections::HashMap::from([
        ("GHL_API_BASE_URL", server.uri()),
        ("GHL_TOKEN_SECRET_PREFIX", setup.prefix.clone()),
        ("GHL_APP_SECRET", app),
        ("STATE_TABLE", setup.table.clone()),
    ]);
    let settings = ghl_capi::settings::RefreshSettings::from_lookup(|n| vars.get(n).cloned())
        .expect("settings");
    let refresh = ghl_capi_aws::lambda::TokenRefresh::new(
        settings,
        &ghl_capi_tests::moto::sdk_config().await,
    )
    .await
    .expect("refresh");
    let summary = refresh.handle().await.expect("all fine");
    assert_eq!(summary, json!({"tokens": 3, "refreshed": 1}));
    assert_eq!(emf.count("TokenRefreshes", &[("Result", "refreshed")]), 1.0);
    assert_eq!(
        setup.stored().await.refresh_token.as_deref(),
        Some("rt-new")
    );
}
