//! The largest webhook the intake takes, through the Lambda handlers over moto:
//! delivered to Meta, or lettered whole, never stuck; one larger is answered
//! `413` (not `429`, which GHL would retry for ever) and counted.

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
