//! The live mapping on S3, as deployed: a version published while the functions
//! are warm runs within `MAPPING_REFRESH_SECONDS` (1 s here) without a restart; a
//! job built under one version is sent as built; a letter names the version that
//! judged it; a version that fails its checks never runs.

use std::time::Duration;

use ghl_capi::ports::mappings::MappingStore;
use ghl_capi_tests::fixtures::{contact, webhook};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::stack::{ghl_has, stack};

#[tokio::test]
async fn a_version_published_while_the_functions_are_warm_runs_within_their_refresh() {
    // Its metrics go where the tests that count them read.
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let s = stack("").await;
    let mappings = s.mappings().await;
    let first = mappings.live().await.expect("read").expect("published");
    let ann = contact("c-ann", "ann@example.com", &[]);
    ghl_has(&s.ghl, &ann).await;
    assert_eq!(
        s.deliver(webhook("ContactCreate", "wh-ann", ann)).await.0,
        200
    );
    // Built under the first version, not yet sent.
    let batch = s.receive(&s.enrich_url).await;
    let done = s.enrichment.handle(&batch).await;
    s.delete_done(&s.enrich_url, &batch, &done).await;

    let renamed = first.text.replace(
        r#"event_name = "Lead""#,
        r#"event_name = "CompleteRegistration""#,
    );
    let second = mappings.publish(&renamed).await.expect("published");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s.drain().await;
    let bob = contact("c-bob", "bob@example.com", &[]);
    ghl_has(&s.ghl, &bob).await;
    assert_eq!(
        s.deliver(webhook("ContactCreate", "wh-bob", bob)).await.0,
        200
    );
    s.drain().await;
    assert_eq!(
        names(&s.meta.events()),
        ["Lead", "CompleteRegistration"],
        "the job built before the publish is sent as built; the next is built under the new version"
    );

    // Written past `mapping publish`, a version that fails its checks never runs.
    mappings
        .publish("[[rules]]\nname = 1\n")
        .await
        .expect("written");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let cat = contact("c-cat", "cat@example.com", &[]);
    ghl_has(&s.ghl, &cat).await;
    assert_eq!(
        s.deliver(webhook("ContactCreate", "wh-cat", cat)).await.0,
        200
    );
    Mock::given(method("GET"))
        .and(path("/contacts/c-gone"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&s.ghl)
        .await;
    let gone = contact("c-gone", "gone@example.com", &[]);
    assert_eq!(
        s.deliver(webhook("ContactCreate", "wh-gone", gone)).await.0,
        200
    );
    s.drain().await;
    assert_eq!(
        names(&s.meta.events())[2..],
        ["CompleteRegistration"],
        "the running version stays"
    );
    // The letter names the version that judged its job.
    let letters = s.dead_letters().await;
    let [letter] = &letters[..] else {
        panic!("one letter, not {letters:?}")
    };
    assert_eq!(letter["deadLetter"]["code"], "contact_not_found");
    assert_eq!(letter["deadLetter"]["mapping"], second.version.as_str());
}

fn names(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| e["event_name"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn an_agency_mapping_of_over_50_kb_is_published_and_taken_without_a_redeploy() {
    let _alone = crate::common::ONE_AT_A_TIME.lock().await;
    let s = stack("").await;
    let mappings = s.mappings().await;
    let first = mappings.live().await.expect("read").expect("published");
    let agency = ghl_capi_tests::fixtures::agency_mapping(&first.text.replace(
        r#"event_name = "Lead""#,
        r#"event_name = "CompleteRegistration""#,
    ));
    assert!(agency.len() > 50_000, "{} bytes", agency.len());
    let published = mappings.publish(&agency).await.expect("published");
    assert_eq!(
        mappings.history(10).await.expect("history")[0].size,
        agency.len()
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let ann = contact("c-ann", "ann@example.com", &[]);
    ghl_has(&s.ghl, &ann).await;
    assert_eq!(
        s.deliver(webhook("ContactCreate", "wh-ann", ann)).await.0,
        200
    );
    s.drain().await;
    assert_eq!(names(&s.meta.events()), ["CompleteRegistration"]);
    let read = mappings.read(&published.version[..8]).await.expect("read");
    assert_eq!(read.map(|p| p.text.len()), Some(agency.len()));
}
