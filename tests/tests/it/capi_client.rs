//! The Conversions API client against a local stand-in of Meta that checks what we send.

use std::collections::HashMap;
use std::time::Duration;

use ghl_capi::capi::ServerEvent;
use ghl_capi::capi::answer::appsecret_proof;
use ghl_capi::capi::client::{CapiClient, DEFAULT_API_VERSION, PixelToken};
use ghl_capi::dispatch::{Delivery, deliver};
use ghl_capi_tests::stand_in::MetaStandIn;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "EAAB-test-token";
const SECRET: &str = "app-secret";

fn client(server: &MockServer, timeout: Duration) -> CapiClient {
    let tokens = HashMap::from([(
        "123".to_owned(),
        PixelToken {
            access_token: TOKEN.into(),
            app_secret: Some(SECRET.into()),
        },
    )]);
    CapiClient::new(&server.uri(), DEFAULT_API_VERSION, tokens, timeout).expect("client")
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

#[tokio::test]
async fn events_are_posted_with_their_credentials_in_the_body() {
    let server = MockServer::start().await;
    MetaStandIn::expecting_token(TOKEN)
        .mount(&server, "123")
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
                fbtrace_id: Some(_),
                events_received: 2,
            }
        )),
        "{outcomes:?}"
    );

    let requests = server.received_requests().await.expect("recorded");
    assert_eq!(requests.len(), 1, "one request for both events");
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
    MetaStandIn::default().mount(&server, "123").await;
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
    assert!(matches!(&outcomes[0], Delivery::Condemned { reason } if reason.contains("190/463")));
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
