//! The Custom Audiences client against a stand-in of Meta's `/users` edge that
//! checks each request exactly: method, path, credentials, schema, rows, sessions.

use std::collections::HashMap;
use std::time::Duration;

use ghl_capi::capi::answer::appsecret_proof;
use ghl_capi::capi::audience::{Operation, Row, SCHEMA, UsersOutcome};
use ghl_capi::capi::client::{CapiClient, DEFAULT_API_VERSION, PixelToken};
use ghl_capi::dispatch::audience::users;
use ghl_capi::mapping::Audience;
use ghl_capi::normalize::sha256_hex;
use ghl_capi_tests::audience_stand_in::AudienceStandIn;
use ghl_capi_tests::fixtures::{VIP_AUDIENCE, audiences, mapping_with};
use serde_json::Value;
use wiremock::MockServer;

pub(crate) const TOKEN: &str = "EAAB-ads-token";
const SECRET: &str = "app-secret";

pub(crate) fn client(server: &MockServer) -> CapiClient {
    let tokens = HashMap::from([(
        VIP_AUDIENCE.to_owned(),
        PixelToken {
            access_token: TOKEN.into(),
            app_secret: Some(SECRET.into()),
        },
    )]);
    CapiClient::new(
        &server.uri(),
        DEFAULT_API_VERSION,
        tokens,
        Duration::from_secs(5),
    )
    .expect("client")
}

pub(crate) fn vips() -> Audience {
    let mapping = mapping_with(&audiences(r#"{ env = "ADS_TOKEN" }"#));
    mapping.audiences[0].clone()
}

/// `n` rows, each with an e-mail and an external id.
pub(crate) fn rows(n: usize) -> Vec<Row> {
    (0..n)
        .map(|i| {
            let mut values = vec![String::new(); SCHEMA.len()];
            values[0] = sha256_hex(&format!("c{i}")).as_str().to_owned();
            values[1] = sha256_hex(&format!("p{i}@example.com")).as_str().to_owned();
            Row(values)
        })
        .collect()
}

#[tokio::test]
async fn rows_are_added_and_removed_with_their_credentials_in_the_body() {
    let server = MockServer::start().await;
    let meta = AudienceStandIn::expecting_token(TOKEN);
    meta.mount(&server, VIP_AUDIENCE).await;
    let client = client(&server);

    let (outcome, received, invalid) = users(&client, &vips(), Operation::Add, rows(3)).await;
    assert!(
        matches!(outcome, UsersOutcome::Applied { .. }),
        "{outcome:?}"
    );
    assert_eq!((received, invalid), (3, 0));
    let (outcome, ..) = users(&client, &vips(), Operation::Remove, rows(1)).await;
    assert!(
        matches!(outcome, UsersOutcome::Applied { .. }),
        "{outcome:?}"
    );
    assert_eq!(meta.members(VIP_AUDIENCE).len(), 2);

    let requests = server.received_requests().await.expect("recorded");
    let methods: Vec<&str> = requests.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["POST", "DELETE"]);
    for request in &requests {
        assert_eq!(
            request.url.path(),
            format!("/{DEFAULT_API_VERSION}/{VIP_AUDIENCE}/users")
        );
        assert!(
            !request.url.as_str().contains(TOKEN),
            "the token stays out of the URL"
        );
        let body: Value = serde_json::from_slice(&request.body).expect("json");
        assert_eq!(body["appsecret_proof"], appsecret_proof(SECRET, TOKEN));
        assert_eq!(body["payload"]["schema"][0], "EXTERN_ID");
        assert!(
            body.get("session").is_none(),
            "one request needs no session"
        );
    }
}

#[tokio::test]
async fn a_change_of_more_than_ten_thousand_rows_goes_in_one_session() {
    let server = MockServer::start().await;
    let meta = AudienceStandIn::expecting_token(TOKEN);
    meta.mount(&server, VIP_AUDIENCE).await;
    let (outcome, received, _) =
        users(&client(&server), &vips(), Operation::Add, rows(25_000)).await;
    assert!(
        matches!(outcome, UsersOutcome::Applied { .. }),
        "{outcome:?}"
    );
    assert_eq!(received, 25_000);
    let taken = meta.taken();
    let sizes: Vec<usize> = taken.iter().map(|t| t.rows.len()).collect();
    assert_eq!(sizes, [10_000, 10_000, 5_000]);
    let sessions: Vec<&Value> = taken.iter().filter_map(|t| t.session.as_ref()).collect();
    assert_eq!(sessions.len(), 3);
    let id = &sessions[0]["session_id"];
    for (i, session) in sessions.iter().enumerate() {
        assert_eq!(&session["session_id"], id, "one session");
        assert_eq!(session["batch_seq"], i as u64 + 1);
        assert_eq!(session["last_batch_flag"], i == 2);
        assert_eq!(session["estimated_num_total"], 25_000);
    }
    assert_eq!(meta.members(VIP_AUDIENCE).len(), 25_000);
}

#[tokio::test]
async fn meta_down_is_retried_and_a_flagged_audience_refused_in_metas_words() {
    let server = MockServer::start().await;
    let meta = AudienceStandIn::expecting_token(TOKEN);
    meta.mount(&server, VIP_AUDIENCE).await;
    meta.fail_next(1);
    let (outcome, ..) = users(&client(&server), &vips(), Operation::Add, rows(1)).await;
    assert!(matches!(outcome, UsersOutcome::Retry { .. }), "{outcome:?}");
    meta.block();
    let (outcome, ..) = users(&client(&server), &vips(), Operation::Add, rows(1)).await;
    assert!(
        matches!(&outcome, UsersOutcome::Refused { code: "audience_blocked", reason } if reason.contains("Audience Upload Blocked")),
        "{outcome:?}"
    );
    let untokened = CapiClient::new(
        &server.uri(),
        DEFAULT_API_VERSION,
        HashMap::new(),
        Duration::from_secs(5),
    )
    .expect("client");
    let (outcome, ..) = users(&untokened, &vips(), Operation::Add, rows(1)).await;
    assert!(
        matches!(&outcome, UsersOutcome::Held { reason } if reason.contains("no access token")),
        "no token: held, {outcome:?}"
    );
    let unknown = MockServer::start().await;
    let (outcome, ..) = users(&client(&unknown), &vips(), Operation::Add, rows(1)).await;
    assert!(
        matches!(outcome, UsersOutcome::Held { .. }),
        "a wrong address: {outcome:?}"
    );
}

#[tokio::test]
async fn a_sync_whose_tag_filter_ghl_refuses_lists_every_contact_and_judges_each() {
    use ghl_capi::ghl::tokens::FixedTokens;
    use ghl_capi::ghl::wire::LocationToken;
    use ghl_capi::pull::audience_sync::list_members;
    use wiremock::matchers::{body_partial_json, method};
    use wiremock::{Mock, ResponseTemplate};

    let ghl = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(
            serde_json::json!({"filters": [{"field": "tags"}]}),
        ))
        .respond_with(ResponseTemplate::new(422).set_body_string(r#"{"message":"bad filter"}"#))
        .with_priority(1)
        .mount(&ghl)
        .await;
    let everyone = serde_json::json!({"contacts": [
        {"id": "a", "email": "a@example.com", "tags": ["vip"]},
        {"id": "b", "email": "b@example.com", "tags": ["other"]},
        {"id": "c", "email": "c@example.com", "tags": ["GOLD"]}], "total": 3});
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(everyone))
        .mount(&ghl)
        .await;
    let tokens = HashMap::from([("loc1".to_owned(), LocationToken("pit".into()))]);
    let client = ghl_capi::ghl::client::GhlClient::new(
        &ghl.uri(),
        FixedTokens(tokens),
        Duration::from_secs(5),
    )
    .expect("client");
    let listed = list_members(&client, &vips(), "loc1", chrono::Utc::now(), &mut |_, _| {})
        .await
        .expect("listed");
    assert!(!listed.filtered);
    assert_eq!(listed.listed, 3);
    let members: Vec<&str> = listed.members.keys().map(String::as_str).collect();
    assert_eq!(members, ["a", "c"], "tags compare as GHL compares them");
}
