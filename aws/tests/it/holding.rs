//! The handlers when what they depend on is missing, slow or wrong: the intake
//! starts without the app secret and answers GHL in time when SQS hangs; a pixel
//! token fixed while the dispatch function is warm is used without a restart.

use std::time::Duration;

use ghl_capi::settings::IntakeSettings;
use ghl_capi_aws::lambda::Intake;
use ghl_capi_tests::fixtures::{contact, webhook};
use ghl_capi_tests::signing;
use lambda_http::Body;

use crate::stack::{Stack, ghl_has, stack};

/// The intake over `sdk`, with the stack's variables and `overrides`.
async fn intake(
    s: &Stack,
    sdk: &aws_config::SdkConfig,
    overrides: &[(&'static str, &str)],
) -> Intake {
    let mut vars = s.vars.clone();
    vars.extend(
        overrides
            .iter()
            .map(|(name, value)| (*name, (*value).to_owned())),
    );
    let settings = IntakeSettings::from_lookup(|n: &str| vars.get(n).cloned()).expect("settings");
    Intake::new(settings, sdk).await.expect("the intake starts")
}

async fn call(intake: &Intake, method: &str, uri: &str, body: Vec<u8>) -> u16 {
    let signature = signing::sign(&body);
    call_with(
        intake,
        method,
        uri,
        &[("x-ghl-signature", &signature)],
        body,
    )
    .await
}

/// `body` to the intake at `uri`, with `headers`: the answer's status.
async fn call_with(
    intake: &Intake,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> u16 {
    let mut request = lambda_http::http::Request::builder()
        .method(method)
        .uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Body::Binary(body)).expect("request");
    intake.handle(request).await.status().as_u16()
}

#[tokio::test]
async fn the_intake_starts_without_the_app_secret_and_only_the_install_route_waits_for_it() {
    // Its metrics go where the tests that count them read.
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let s = stack("").await;
    let sdk = ghl_capi_tests::moto::sdk_config().await;
    let missing = format!("{}/ghl-app", s.id);
    let intake = intake(
        &s,
        &sdk,
        &[("GHL_APP_SECRET", &missing), ("GHL_APP_ID", "app-1")],
    )
    .await;
    let body = webhook("ContactCreate", "wh-1", contact("c1", "a@example.com", &[]));
    assert_eq!(call(&intake, "POST", "/webhooks/ghl", body).await, 200);
    assert_eq!(
        call(&intake, "GET", "/oauth/callback?code=c&state=s", vec![]).await,
        503,
        "an install waits for the app secret; GHL's webhooks do not"
    );
}

#[tokio::test]
async fn a_hanging_sqs_is_answered_429_well_inside_the_functions_timeout() {
    // Its metrics go where the tests that count them read.
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let s = stack("").await;
    // An endpoint that takes connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let address = silent.local_addr().expect("address");
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(format!("http://{address}"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "static",
        ));
    let sdk = ghl_capi_aws::config::bounded(loader).load().await;
    let intake = intake(&s, &sdk, &[]).await;
    let body = webhook("ContactCreate", "wh-1", contact("c1", "a@example.com", &[]));
    // The template gives the intake 10 s; a 5xx or a timeout would lose the
    // delivery under GHL's older retry rules.
    let status = tokio::time::timeout(
        Duration::from_secs(10),
        call(&intake, "POST", "/webhooks/ghl", body),
    )
    .await
    .expect("answered before the function's timeout");
    assert_eq!(status, 429, "GHL delivers it again");
    // A GHL workflow's call alike: its keys' secret cannot be read either.
    let call = serde_json::json!({"locationId": "loc1", "contactId": "c1", "workflow": "w"});
    let status = tokio::time::timeout(
        Duration::from_secs(10),
        call_with(
            &intake,
            "POST",
            "/workflows/ghl",
            &[("x-api-key", crate::stack::API_KEY)],
            serde_json::to_vec(&call).expect("json"),
        ),
    )
    .await
    .expect("answered before the function's timeout");
    assert_eq!(status, 429, "GHL sends the call again");
    held.abort();
}

#[tokio::test]
async fn a_pixel_token_fixed_while_the_function_is_warm_is_used_after_metas_refusal() {
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let s = stack("").await;
    let name = format!("{}/meta/main", s.id);
    s.secrets
        .put_secret_value()
        .secret_id(&name)
        .secret_string("EAAB-expired")
        .send()
        .await
        .expect("stored");
    let ann = contact("c-ann", "ann@example.com", &[]);
    ghl_has(&s.ghl, &ann).await;
    assert_eq!(
        s.deliver(webhook("ContactCreate", "wh-ann", ann)).await.0,
        200
    );
    // Meta refuses the token (190): the event is held, not lost.
    let enriched = s.receive(&s.enrich_url).await;
    let response = s.enrichment.handle(&enriched).await;
    s.delete_done(&s.enrich_url, &enriched, &response).await;
    let sent = s.receive(&s.dispatch_url).await;
    let response = s.dispatch.handle(&sent).await;
    s.delete_done(&s.dispatch_url, &sent, &response).await;
    assert!(s.meta.events().is_empty());
    assert!(s.dead_letters().await.is_empty(), "a token problem is held");
    // A person stores the right token; the warm function reads it again.
    s.secrets
        .put_secret_value()
        .secret_id(&name)
        .secret_string(r#"{"access_token":"EAAB-main","app_secret":"s3cret"}"#)
        .send()
        .await
        .expect("stored");
    s.drain().await;
    let events = s.meta.events();
    assert_eq!(
        events.len(),
        1,
        "delivered with the fixed token: {events:?}"
    );
    assert_eq!(events[0]["event_name"], "Lead");
    assert!(s.dead_letters().await.is_empty());
}

#[tokio::test]
async fn an_unseen_contacts_first_tag_webhook_is_counted_as_a_baseline_and_fires_nothing() {
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let emf = crate::common::Emf::start();
    let s = stack("").await;
    let tagged = contact("c-new", "new@example.com", &["vip"]);
    let body = webhook("ContactTagUpdate", "wh-tag", tagged.clone());
    assert_eq!(s.deliver(body).await.0, 200);
    s.drain().await;
    assert!(
        s.meta.events().is_empty(),
        "which tag changed is unknowable"
    );
    assert_eq!(emf.count("TagBaselines", &[]), 1.0);
    // The next change of that contact is a transition: its new tag fires.
    let mut later = tagged;
    later["tags"] = serde_json::json!(["vip", "gold"]);
    assert_eq!(
        s.deliver(webhook("ContactTagUpdate", "wh-tag-2", later))
            .await
            .0,
        200
    );
    s.drain().await;
    let events = s.meta.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event_name"], "CompleteRegistration");
    assert_eq!(events[0]["custom_data"]["content_name"], "gold");
}
