//! Installing the marketplace app: the install link, the callback's CSRF check, the
//! code exchange and where the token sets are stored, through the API's route.

use std::time::Duration;

use chrono::Utc;
use ghl_capi::ghl::install::{Connected, Installer, UserType, check_state, state, url};
use ghl_capi::ghl::oauth::TokenSet;
use ghl_capi::ghl::tokens::{ManagedTokens, TokenSource};
use ghl_capi::ghl::webhook::{ReplayWindow, SignatureHeaders, WebhookKeys};
use ghl_capi::intake::{Api, Request};
use ghl_capi::ports::lease::MemoryLease;
use ghl_capi::ports::queue::MemoryQueue;
use ghl_capi::ports::secrets::{EnvSecrets, MemorySecrets, SecretStore, VersionedSecrets};
use ghl_capi::ports::state::MemoryState;
use ghl_capi_tests::fixtures;
use serde_json::json;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

type InstallApi =
    Api<MemoryQueue, EnvSecrets, Installer<MemorySecrets, MemoryLease, MemoryState, MemoryQueue>>;

/// The secret holding the test app's credentials.
const APP_SECRET: &str = "ghl-capi/ghl-app";

async fn api(server: &MockServer) -> InstallApi {
    let app = fixtures::oauth_app();
    let secrets = MemorySecrets::default();
    let credentials = json!({"client_id": app.client_id, "client_secret": app.client_secret});
    secrets
        .put(APP_SECRET, &credentials.to_string())
        .await
        .expect("stored");
    Api {
        keys: WebhookKeys::ghl_published(),
        window: ReplayWindow::default(),
        apps: Default::default(),
        queue: MemoryQueue::default(),
        secrets: EnvSecrets,
        conversion_keys_secret: None,
        allow_unscoped_keys: false,
        warned_unscoped: Default::default(),
        install: Installer {
            secrets,
            app_secret: APP_SECRET.into(),
            base_url: server.uri(),
            timeout: Duration::from_secs(5),
            prefix: "ghl-capi/ghl/".into(),
            redirect_uri: Some("https://x.example/oauth/callback".into()),
            claims: MemoryLease::default(),
            pending: MemoryState::default(),
            connected: Some(MemoryQueue::default()),
            companies: vec!["co1".into()],
        },
    }
}

async fn callback(api: &InstallApi, query: &str) -> ghl_capi::intake::Response {
    api.handle(
        Request {
            method: "GET",
            path: "/oauth/callback",
            query: Some(query),
            credentials: Default::default(),
            signatures: SignatureHeaders::default(),
            body: b"",
        },
        Utc::now(),
    )
    .await
}

/// The locations the installs announced, for their baselines.
fn announced(api: &InstallApi) -> Vec<String> {
    let queue = api.install.connected.as_ref().expect("a connect queue");
    queue
        .sent()
        .iter()
        .map(|m| {
            let c: Connected = serde_json::from_str(&m.body).expect("an announcement");
            c.connected
        })
        .collect()
}

async fn stored(api: &InstallApi, name: &str) -> TokenSet {
    let text = api.install.secrets.get(name).await.expect("stored");
    TokenSet::parse(text.expose()).expect("token set")
}

#[tokio::test]
async fn the_install_link_carries_the_app_scopes_and_a_state_only_we_can_make() {
    let now = Utc::now();
    let app = &fixtures::oauth_app();
    let link = url(
        app,
        None,
        UserType::Location,
        &["contacts.readonly", "opportunities.readonly"],
        now,
    );
    let url = reqwest::Url::parse(&link).expect("a URL");
    assert_eq!(
        (url.host_str(), url.path()),
        (
            Some("marketplace.gohighlevel.com"),
            "/v2/oauth/chooselocation"
        )
    );
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(param("client_id").as_deref(), Some("app-1"));
    assert_eq!(param("response_type").as_deref(), Some("code"));
    assert_eq!(
        param("scope").as_deref(),
        Some("contacts.readonly opportunities.readonly")
    );
    let returned = param("state").expect("state");
    assert_eq!(
        check_state(app, &returned, now).expect("valid"),
        UserType::Location
    );
    let forged = returned.replace(".L.", ".C.");
    assert!(
        check_state(app, &forged, now).is_err(),
        "the user type is signed too"
    );
    assert!(
        check_state(app, &returned, now + chrono::Duration::hours(2)).is_err(),
        "an hour at most"
    );
}

#[tokio::test]
async fn a_location_install_stores_its_token_set_and_shows_a_page() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(body_string_contains("grant_type=authorization_code"))
        .and(body_string_contains("code=c0de"))
        .and(body_string_contains("user_type=Location"))
        .and(body_string_contains("client_secret=shh"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "at-1", "token_type": "Bearer", "expires_in": 86399,
            "refresh_token": "rt-1", "scope": "contacts.readonly", "userType": "Location",
            "locationId": "loc1", "companyId": "co1", "userId": "u1"})))
        .expect(1)
        .mount(&server)
        .await;
    let api = api(&server).await;
    let state = state(&fixtures::oauth_app(), UserType::Location, Utc::now());
    let answer = callback(&api, &format!("code=c0de&state={state}")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.content().0, "text/html; charset=utf-8");
    assert!(answer.content().1.contains("connected to location loc1"));
    let set = stored(&api, "ghl-capi/ghl/loc1").await;
    assert_eq!(set.refresh_token.as_deref(), Some("rt-1"));
    assert!(
        set.installed_at
            .is_some_and(|at| (Utc::now() - at).num_seconds() < 60),
        "the install's time, to tell a late uninstall from a new one"
    );
    assert_eq!(announced(&api), ["loc1"], "announced, to be seeded at once");
    assert!(
        set.expires_at
            .is_some_and(|at| at > Utc::now() + chrono::Duration::hours(23))
    );
    // The same link again (a replayed callback): refused, and GHL is not asked
    // (`expect(1)` above).
    let again = callback(&api, &format!("code=c0de&state={state}")).await;
    assert_eq!(again.status, 403);
    assert!(
        again.content().1.contains("used already"),
        "{}",
        again.content().1
    );
}

#[tokio::test]
async fn an_install_whose_announcement_fails_still_stands() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "at-1", "refresh_token": "rt-1", "expires_in": 86399,
            "userType": "Location", "locationId": "loc1", "companyId": "co1"})))
        .mount(&server)
        .await;
    let api = api(&server).await;
    api.install.connected.as_ref().expect("queue").fail_next(1);
    let state = state(&fixtures::oauth_app(), UserType::Location, Utc::now());
    let answer = callback(&api, &format!("code=c0de&state={state}")).await;
    // The token is stored: the next scheduled reconciliation takes the baseline.
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(
        stored(&api, "ghl-capi/ghl/loc1")
            .await
            .refresh_token
            .as_deref(),
        Some("rt-1")
    );
    assert!(announced(&api).is_empty());
}

#[tokio::test]
async fn an_agency_install_stores_the_company_set_and_mints_each_location_when_first_needed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(body_string_contains("user_type=Company"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "at-co", "refresh_token": "rt-co", "expires_in": 86399,
            "userType": "Company", "companyId": "co1", "approvedLocations": ["loc1", "loc2"],
            "userId": "u1"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth/locationToken"))
        .and(header("authorization", "Bearer at-co"))
        .and(header("version", "2021-07-28"))
        .and(body_string_contains("companyId=co1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "at-minted", "expires_in": 86399, "userType": "Location"})))
        .expect(2)
        .mount(&server)
        .await;
    let api = api(&server).await;
    let state = state(&fixtures::oauth_app(), UserType::Company, Utc::now());
    let answer = callback(&api, &format!("code=c0de&state={state}")).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body["locations"], json!(["loc1", "loc2"]));
    assert_eq!(announced(&api), ["loc1", "loc2"], "one announcement each");
    assert_eq!(
        stored(&api, "ghl-capi/ghl/company-co1")
            .await
            .refresh_token
            .as_deref(),
        Some("rt-co")
    );
    // Nothing minted in the callback (an agency of hundreds would outrun it): each
    // location's token is minted when enrichment first needs it.
    assert!(api.install.secrets.get("ghl-capi/ghl/loc1").await.is_err());
    let tokens = ManagedTokens::new(
        api.install.secrets.clone(),
        MemoryLease::default(),
        api.install.pending.clone(),
        Some(fixtures::app_in(&api.install.secrets, &server.uri()).await),
        "ghl-capi/ghl/",
    );
    for location in ["loc1", "loc2"] {
        assert_eq!(tokens.token(location).await.expect("minted").0, "at-minted");
        let minted = stored(&api, &format!("ghl-capi/ghl/{location}")).await;
        assert_eq!(
            (minted.company_id.as_deref(), minted.location_id.as_deref()),
            (Some("co1"), Some(location)),
            "minted again from the company's token when it expires"
        );
        assert_eq!(
            tokens.token(location).await.expect("kept").0,
            "at-minted",
            "once"
        );
    }
    assert!(
        tokens.token("loc-not-approved").await.is_err(),
        "only approved locations are minted"
    );
}

#[tokio::test]
async fn a_forged_denied_or_incomplete_callback_stores_nothing() {
    let server = MockServer::start().await;
    Mock::given(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let api = api(&server).await;
    let good = state(&fixtures::oauth_app(), UserType::Location, Utc::now());
    for (query, status) in [
        ("code=c0de&state=1.abc.L.00", 403),
        (&format!("state={good}") as &str, 400),
        (
            "error=access_denied&error_description=The+user+declined",
            400,
        ),
    ] {
        let answer = callback(&api, query).await;
        assert_eq!(answer.status, status, "{query}: {:?}", answer.body);
        assert!(answer.content().1.contains("did not complete"));
    }
    assert!(api.install.secrets.get("ghl-capi/ghl/loc1").await.is_err());
    assert!(
        announced(&api).is_empty(),
        "nothing connected, nothing announced"
    );
}

#[tokio::test]
async fn an_install_webhook_for_an_agency_location_mints_its_token_on_first_use() {
    use ghl_capi::enrich::{Enriched, Enricher};
    use ghl_capi::ghl::client::GhlClient;
    use ghl_capi::hold::HoldPolicy;

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/locationToken"))
        .and(header("authorization", "Bearer at-co"))
        .and(body_string_contains("locationId=loc9"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "at-loc9", "expires_in": 86399, "userType": "Location"})))
        .expect(1)
        .mount(&server)
        .await;
    let secrets = MemorySecrets::default();
    let company = json!({"access_token": "at-co", "refresh_token": "rt-co", "user_type": "Company",
        "company_id": "co1", "expires_at": (Utc::now() + chrono::Duration::hours(20)).to_rfc3339()});
    secrets
        .put("ghl-capi/ghl/company-co1", &company.to_string())
        .await
        .expect("stored");
    let app = fixtures::app_in(&secrets, &server.uri()).await;
    let tokens = fixtures::tokens_in(secrets, Some(app));
    let ghl = GhlClient::new(&server.uri(), tokens, Duration::from_secs(5)).expect("client");
    let job = ghl_capi::jobs::EnrichJob::Webhook {
        key: "wh-in".into(),
        received_at: Utc::now(),
        body:
            json!({"type": "INSTALL", "appId": "app-1", "locationId": "loc9", "companyId": "co1"})
                .to_string(),
    };
    let mapping = ghl_capi::mapping::Mapping::builtin();
    let state = MemoryState::default();
    let outcome = Enricher::new(&mapping, &ghl, &state, HoldPolicy::default())
        .enrich(&job, Utc::now())
        .await;
    assert!(matches!(outcome, Enriched::Done { .. }), "{outcome:?}");
    let token = ghl.tokens().token("loc9").await.expect("minted");
    assert_eq!(token.0, "at-loc9");
    assert_eq!(
        ghl.tokens().token("loc9").await.expect("kept").0,
        "at-loc9",
        "minted once"
    );
}

#[tokio::test]
async fn an_install_started_in_the_marketplace_is_kept_for_our_agency_and_dropped_for_another() {
    use ghl_capi_tests::oauth_stand_in::OAuthStandIn;

    let server = MockServer::start().await;
    let ghl = OAuthStandIn::new(
        &fixtures::oauth_app(),
        Some("https://x.example/oauth/callback"),
    );
    ghl.mount(&server).await;
    let api = api(&server).await;
    let tokens = ManagedTokens::new(
        api.install.secrets.clone(),
        MemoryLease::default(),
        api.install.pending.clone(),
        None,
        "ghl-capi/ghl/",
    );

    // Ours, from `oauth url`: the signed state says which kind it is.
    let ours = ghl.location_install("co1", "loc1");
    let state = state(&fixtures::oauth_app(), UserType::Location, Utc::now());
    let answer = callback(&api, &format!("code={ours}&state={state}")).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(
        ghl.exchanges()[0].get("user_type").map(String::as_str),
        Some("Location")
    );

    // *Add App* on the marketplace page: the code alone, for a location of our
    // agency. GHL's answer says which kind of install it is.
    let added = ghl.location_install("co1", "loc2");
    let answer = callback(&api, &format!("code={added}")).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert!(answer.content().1.contains("connected to location loc2"));
    assert_eq!(ghl.exchanges()[1].get("user_type"), None, "left to GHL");
    assert_eq!(
        stored(&api, "ghl-capi/ghl/loc2")
            .await
            .company_id
            .as_deref(),
        Some("co1")
    );
    let agency = ghl.company_install("co1", &["loc3"]);
    let answer = callback(&api, &format!("code={agency}")).await;
    assert_eq!(
        answer.body["locations"],
        json!(["loc3"]),
        "{:?}",
        answer.body
    );
    assert!(
        api.install
            .secrets
            .get("ghl-capi/ghl/company-co1")
            .await
            .is_ok()
    );

    // A stranger's agency installs the public app: refused, nothing kept.
    let stranger = ghl.location_install("co-other", "loc-x");
    let answer = callback(&api, &format!("code={stranger}")).await;
    assert_eq!(answer.status, 403, "{:?}", answer.body);
    assert!(
        answer
            .content()
            .1
            .contains("does not serve agency co-other")
    );
    assert!(api.install.secrets.get("ghl-capi/ghl/loc-x").await.is_err());
    assert_eq!(announced(&api), ["loc1", "loc2", "loc3"]);
    for (location, connected) in [("loc2", true), ("loc3", true), ("loc-x", false)] {
        assert_eq!(
            tokens.connected(location).await.expect("read"),
            connected,
            "{location}: only a connected location reaches a pixel kept for all"
        );
    }

    // With no agency named, no marketplace-started install is taken, and GHL is
    // not even asked.
    let mut closed = api;
    closed.install.companies.clear();
    let code = ghl.location_install("co1", "loc4");
    let before = ghl.exchanges().len();
    let answer = callback(&closed, &format!("code={code}")).await;
    assert_eq!(answer.status, 403);
    assert!(
        answer.content().1.contains("GHL_COMPANY_ID"),
        "{}",
        answer.content().1
    );
    assert_eq!(ghl.exchanges().len(), before);
}
