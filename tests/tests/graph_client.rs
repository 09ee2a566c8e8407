//! The Graph API client against a local mock of Meta that checks what we send.

use std::collections::HashMap;
use std::time::Duration;

use ghl_capi::capi::ServerEvent;
use ghl_capi::capi::client::{DEFAULT_GRAPH_VERSION, GraphClient, PixelToken};
use ghl_capi::capi::graph::appsecret_proof;
use ghl_capi::dispatch::{Delivery, deliver};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TOKEN: &str = "EAAB-test-token";
const SECRET: &str = "app-secret";

fn client(server: &MockServer, timeout: Duration) -> GraphClient {
    let tokens = HashMap::from([(
        "123".to_owned(),
        PixelToken {
            access_token: TOKEN.into(),
            app_secret: Some(SECRET.into()),
        },
    )]);
    GraphClient::new(&server.uri(), DEFAULT_GRAPH_VERSION, tokens, timeout).expect("client")
}

fn events(names: &[&str]) -> Vec<ServerEvent> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut e: ServerEvent = serde_json::from_value(json!({
                "event_name": n, "event_time": 1_795_000_000 + i as i64, "action_source": "system_generated",
                "user_data": {"em": ["abc"]}
            }))
            .expect("event");
            e.event_id = Some(format!("id-{i}"));
            e
        })
        .collect()
}

/// Meta as it behaves: refuses a whole request holding an invalid event, else
/// reports how many it received.
struct Meta;

impl Respond for Meta {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).expect("JSON body");
        let data = body["data"].as_array().expect("data");
        if data
            .iter()
            .any(|e| e["event_name"] == "Purchase" && e.get("custom_data").is_none())
        {
            return ResponseTemplate::new(400).set_body_json(json!({"error": {
                "message": "Invalid parameter", "type": "OAuthException", "code": 100, "error_subcode": 2_804_009,
                "error_user_msg": "Purchase events need a value", "fbtrace_id": "AbC"}}));
        }
        ResponseTemplate::new(200).set_body_json(
            json!({"events_received": data.len(), "messages": [], "fbtrace_id": "Ok1"}),
        )
    }
}

#[tokio::test]
async fn events_are_posted_with_their_credentials_in_the_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v25.0/123/events"))
        .respond_with(Meta)
        .expect(1)
        .mount(&server)
        .await;
    let outcomes = deliver(
        &client(&server, Duration::from_secs(5)),
        "123",
        Some("TEST42"),
        &events(&["Lead", "Lead"]),
    )
    .await;
    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            Delivery::Delivered {
                fbtrace_id: Some(_)
            }
        )),
        "{outcomes:?}"
    );

    let requests = server.received_requests().await.expect("recorded");
    let body: Value = serde_json::from_slice(&requests[0].body).expect("json");
    assert_eq!(body["access_token"], TOKEN);
    assert_eq!(body["appsecret_proof"], appsecret_proof(SECRET, TOKEN));
    assert_eq!(body["test_event_code"], "TEST42");
    assert_eq!(body["data"][1]["event_id"], "id-1");
    assert!(
        !requests[0].url.as_str().contains(TOKEN),
        "the token stays out of the URL"
    );
}

#[tokio::test]
async fn one_invalid_event_is_isolated_over_http_and_the_rest_delivered() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v25.0/123/events"))
        .respond_with(Meta)
        .mount(&server)
        .await;
    let names = ["Lead", "Lead", "Purchase", "Lead", "Lead"];
    let outcomes = deliver(
        &client(&server, Duration::from_secs(5)),
        "123",
        None,
        &events(&names),
    )
    .await;
    for (i, outcome) in outcomes.iter().enumerate() {
        if i == 2 {
            assert!(
                matches!(outcome, Delivery::DeadLetter { reason } if reason.contains("Purchase events need a value")),
                "{outcome:?}"
            );
        } else {
            assert!(matches!(outcome, Delivery::Delivered { .. }), "event {i}");
        }
    }
}

#[tokio::test]
async fn a_timeout_is_retried_not_lost() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let outcomes = deliver(
        &client(&server, Duration::from_millis(200)),
        "123",
        None,
        &events(&["Lead"]),
    )
    .await;
    assert!(
        matches!(&outcomes[0], Delivery::Retry { reason } if reason.contains("could not reach")),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn an_expired_token_holds_the_events() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": {"code": 190, "error_subcode": 463, "message": "Session has expired"}}),
        ))
        .mount(&server)
        .await;
    let outcomes = deliver(
        &client(&server, Duration::from_secs(5)),
        "123",
        None,
        &events(&["Lead"]),
    )
    .await;
    assert!(
        matches!(&outcomes[0], Delivery::TokenProblem { reason } if reason.contains("190/463"))
    );
}

#[test]
fn credentials_never_show_in_debug_output() {
    let token = PixelToken {
        access_token: TOKEN.into(),
        app_secret: Some(SECRET.into()),
    };
    let shown = format!("{token:?}");
    assert!(!shown.contains(TOKEN) && !shown.contains(SECRET), "{shown}");
}
