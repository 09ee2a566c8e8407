//! The Graph API as it stands in late 2026 (`reference/meta-capi.md` §10.1): the
//! client's every call (events, audience rows, the audience read) on v27.0, to a
//! stand-in that refuses what Meta refuses new apps on every version; and a version
//! Meta flags, auto-upgraded (`X-Ad-Api-Version-Warning`) or deprecated (2635),
//! never costing an event: the first is delivered, the second held with what to do.

use std::collections::HashMap;
use std::time::Duration;

use ghl_capi::capi::ServerEvent;
use ghl_capi::capi::audience::{
    AudienceState, Operation, Row, SCHEMA, UsersOutcome, classify_status,
};
use ghl_capi::capi::client::{AudiencesApi, CapiClient, PixelToken};
use ghl_capi::dispatch::audience::users;
use ghl_capi::dispatch::{Delivery, deliver};
use ghl_capi::normalize::sha256_hex;
use ghl_capi_tests::audience_stand_in::AudienceStandIn;
use ghl_capi_tests::fixtures::{VIP_AUDIENCE, audiences, mapping_with};
use ghl_capi_tests::stand_in::{MetaStandIn, VersionFlag};
use serde_json::{Value, json};
use wiremock::MockServer;

const TOKEN: &str = "EAAB-v27-token";
const V27: &str = "v27.0";

fn client(server: &MockServer, version: &str) -> CapiClient {
    let token = PixelToken {
        access_token: TOKEN.into(),
        app_secret: Some("app-secret".into()),
    };
    let tokens = HashMap::from([
        ("123".to_owned(), token.clone()),
        (VIP_AUDIENCE.to_owned(), token),
    ]);
    CapiClient::new(&server.uri(), version, tokens, Duration::from_secs(5)).expect("client")
}

fn events(names: &[&str]) -> Vec<ServerEvent> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            serde_json::from_value(
                json!({"event_name": n, "event_time": 1_795_000_000 + i as i64,
                "event_id": format!("id-{i}"), "action_source": "system_generated",
                "user_data": {"em": ["abc"]}}),
            )
            .expect("event")
        })
        .collect()
}

fn row(i: usize) -> Row {
    let mut values = vec![String::new(); SCHEMA.len()];
    values[0] = sha256_hex(&format!("c{i}")).as_str().to_owned();
    values[1] = sha256_hex(&format!("p{i}@example.com")).as_str().to_owned();
    Row(values)
}

#[tokio::test]
async fn every_call_the_pipeline_makes_works_on_v27_as_meta_takes_it_from_a_new_app() {
    let server = MockServer::start().await;
    let meta = MetaStandIn::expecting_token(TOKEN).at_version(V27);
    meta.mount(&server, "123").await;
    let ads = AudienceStandIn::expecting_token(TOKEN).at_version(V27);
    ads.mount(&server, VIP_AUDIENCE).await;
    let client = client(&server, V27);

    // A batch with one invalid event: split over v27 calls, the rest delivered.
    let outcomes = deliver(&client, "123", None, &events(&["Lead", "Refused", "Lead"])).await;
    assert!(
        matches!(outcomes[1], Delivery::DeadLetter { .. }),
        "{outcomes:?}"
    );
    for i in [0, 2] {
        assert!(
            matches!(outcomes[i], Delivery::Delivered { .. }),
            "{outcomes:?}"
        );
    }
    assert_eq!(meta.events().len(), 2);

    // Audience rows added and removed (a real DELETE, not a method override), and
    // the audience read with plain fields.
    let vips = mapping_with(&audiences(r#"{ env = "ADS_TOKEN" }"#)).audiences[0].clone();
    let (added, ..) = users(&client, &vips, Operation::Add, vec![row(1), row(2)]).await;
    assert!(
        matches!(added, UsersOutcome::Applied { received: 2, .. }),
        "{added:?}"
    );
    let (removed, ..) = users(&client, &vips, Operation::Remove, vec![row(1)]).await;
    assert!(
        matches!(removed, UsersOutcome::Applied { .. }),
        "{removed:?}"
    );
    assert_eq!(ads.members(VIP_AUDIENCE).len(), 1);
    let read = client.audience(VIP_AUDIENCE).await.expect("answered");
    assert!(
        matches!(
            classify_status(read.status, &read.body),
            AudienceState::Usable { .. }
        ),
        "{read:?}"
    );

    // What v27 refuses new apps is refused by the stand-in too.
    let http = reqwest::Client::new();
    let overridden = http
        .post(format!("{}/{V27}/123/events?method=DELETE", server.uri()))
        .json(&json!({"data": [], "access_token": TOKEN}))
        .send()
        .await
        .expect("answered");
    assert_eq!(overridden.status(), 400);
    let answer: Value = overridden.json().await.expect("json");
    assert_eq!(answer["error"]["code"], 100, "{answer}");
    let aliased = http
        .get(format!(
            "{}/{V27}/{VIP_AUDIENCE}?fields=name.as(title),operation_status",
            server.uri()
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("answered");
    assert_eq!(aliased.status(), 400, "a field alias");
}

#[tokio::test]
async fn a_version_meta_flags_costs_no_event_and_a_deprecated_one_holds_them_saying_what_to_set() {
    let server = MockServer::start().await;
    MetaStandIn::expecting_token(TOKEN)
        .at_version("v24.0")
        .flagging(VersionFlag::AutoUpgraded(
            "The call has been auto-upgraded to v25.0 as v24.0 is deprecated.".into(),
        ))
        .mount(&server, "123")
        .await;
    let outcomes = deliver(&client(&server, "v24.0"), "123", None, &events(&["Lead"])).await;
    assert!(
        matches!(outcomes[0], Delivery::Delivered { .. }),
        "{outcomes:?}"
    );

    let gone = MockServer::start().await;
    let meta = MetaStandIn::expecting_token(TOKEN)
        .at_version("v23.0")
        .flagging(VersionFlag::Deprecated);
    meta.mount(&gone, "123").await;
    let outcomes = deliver(
        &client(&gone, "v23.0"),
        "123",
        None,
        &events(&["Lead", "Lead"]),
    )
    .await;
    for outcome in &outcomes {
        assert!(
            matches!(outcome, Delivery::Condemned { reason } if reason.contains("2635") && reason.contains("GRAPH_API_VERSION")),
            "held, never split or lettered: {outcome:?}"
        );
    }
    assert!(meta.events().is_empty());
}
