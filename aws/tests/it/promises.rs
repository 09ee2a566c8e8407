//! The two promises at the Lambda handlers over moto: nothing accepted is lost
//! (the largest webhook the intake takes is delivered or lettered whole, one larger
//! is answered `413`, not a `429` GHL would retry for ever; two conversions sharing
//! an event id are sent or lettered, never dropped), and no one else gets in (with
//! no marketplace app, a signed webhook is refused).

use ghl_capi::jobs::{LetterMessage, MAX_JOB_BYTES};
use ghl_capi_tests::fixtures::{contact, padded_webhook};

use crate::stack::{ghl_has, stack};

#[tokio::test]
async fn the_largest_accepted_webhook_is_delivered_or_lettered_whole_and_a_larger_one_is_413() {
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let s = stack("").await;
    let ann = contact("c-ann", "ann@example.com", &[]);
    ghl_has(&s.ghl, &ann).await;
    let largest = |id: &str, who: serde_json::Value| {
        padded_webhook("ContactCreate", id, who, MAX_JOB_BYTES - 100)
    };
    // Ann's reaches Meta; Zoe's, whom GHL does not know, becomes a letter.
    let zoe = contact("c-zoe", "zoe@example.com", &[]);
    let zoes = largest("wh-zoe", zoe);
    for body in [largest("wh-ann", ann), zoes.clone()] {
        assert!(body.len() > 1000 * 1000, "{} bytes", body.len());
        let (status, answer) = s.deliver(body).await;
        assert_eq!(status, 200, "{answer}");
    }
    s.drain().await;
    let events = s.meta.events();
    assert_eq!(events.len(), 1, "{events:?}");
    let letters = s.dead_letters().await;
    let [letter] = &letters[..] else {
        panic!("one letter, not {}", letters.len())
    };
    let letter: LetterMessage = serde_json::from_value(letter.clone()).expect("a letter");
    assert_eq!(letter.dead_letter.code, "contact_not_found");
    let job: ghl_capi::jobs::EnrichJob =
        serde_json::from_str(&letter.message).expect("the job, whole");
    let ghl_capi::jobs::EnrichJob::Webhook { body, .. } = job else {
        panic!("a webhook job")
    };
    assert_eq!(
        body.as_bytes(),
        zoes.as_slice(),
        "its verified bytes, for a redrive"
    );

    let larger = padded_webhook(
        "ContactCreate",
        "wh-huge",
        contact("c-ann", "ann@example.com", &[]),
        MAX_JOB_BYTES + 100,
    );
    let (status, answer) = s.deliver(larger).await;
    assert_eq!(
        (
            status,
            answer["error"].as_str(),
            answer["webhookId"].as_str()
        ),
        (413, Some("too_large_to_queue"), Some("wh-huge"))
    );
    assert_eq!(s.pending(&s.enrich_url).await, 0, "nothing queued");
}

#[tokio::test]
async fn conversions_sharing_an_event_id_are_sent_or_lettered_through_the_handlers() {
    use serde_json::json;
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    // A second rule on posted conversions: one id, two names.
    let rule = "\n[[rules]]\nname = \"high-value\"\ntrigger = \"conversion.posted\"\nevent_name = \"HighValuePurchase\"\nvalue = { field = \"conversion.value\" }\ncurrency = \"USD\"\n";
    let s = stack(rule).await;
    for (id, email) in [("c-ann", "ann@example.com"), ("c-bob", "bob@example.com")] {
        ghl_has(&s.ghl, &contact(id, email, &[])).await;
    }
    for who in ["c-ann", "c-bob"] {
        let conversion = json!({"locationId": ghl_capi_tests::fixtures::LOCATION,
            "eventType": "Purchase", "value": 250.0, "currency": "USD",
            "timestamp": chrono::Utc::now().to_rfc3339(), "eventId": "order-1"});
        let (status, _) = s
            .post(
                &format!("/contacts/{who}/conversions"),
                &[("authorization", format!("Bearer {}", crate::stack::API_KEY))],
                serde_json::to_vec(&conversion).expect("json"),
            )
            .await;
        assert_eq!(status, 202);
    }
    s.drain().await;
    let mut sent: Vec<String> = s
        .meta
        .events()
        .iter()
        .filter_map(|e| e["event_name"].as_str().map(str::to_owned))
        .collect();
    sent.sort();
    assert_eq!(
        sent,
        ["HighValuePurchase", "Purchase"],
        "the first contact's two"
    );
    let codes: Vec<String> = s
        .dead_letters()
        .await
        .iter()
        .filter_map(|l| l["deadLetter"]["code"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        codes,
        ["event_id_reused", "event_id_reused"],
        "the second's, lettered"
    );
}

#[tokio::test]
async fn without_a_marketplace_app_the_intake_handler_refuses_signed_webhooks() {
    use ghl_capi::settings::IntakeSettings;
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let s = stack("").await;
    let mut vars = s.vars.clone();
    vars.remove("GHL_APP_ID");
    let settings = IntakeSettings::from_lookup(|n| vars.get(n).cloned()).expect("settings");
    let sdk = ghl_capi_tests::moto::sdk_config().await;
    let intake = ghl_capi_aws::lambda::Intake::new(settings, &sdk)
        .await
        .expect("intake");
    let body = ghl_capi_tests::fixtures::webhook(
        "ContactCreate",
        "wh-1",
        contact("c-ann", "a@example.com", &[]),
    );
    let request = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/webhooks/ghl")
        .header("x-ghl-signature", ghl_capi_tests::signing::sign(&body))
        .body(lambda_http::Body::Binary(body))
        .expect("request");
    let answer = intake.handle(request).await;
    assert_eq!(answer.status().as_u16(), 403);
    assert_eq!(s.pending(&s.enrich_url).await, 0, "nothing queued");
}
