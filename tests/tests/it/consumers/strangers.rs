//! "All locations" means the locations connected here: a webhook of a location
//! with no GHL token or install reaches only the pixels and audiences that name it.

use ghl_capi::ghl::Contact;
use ghl_capi::jobs::EnrichJob;
use ghl_capi::ports::queue::Record;
use ghl_capi_tests::fakes::FakeGhl;
use ghl_capi_tests::fixtures;

use super::{Stages, contact_json, now, queued, record};

/// GHL holding c1 and c2, with no token or install here for `strangers`.
fn ghl_without(strangers: &[&str]) -> FakeGhl {
    let contacts: Vec<Contact> = ["c1", "c2"]
        .iter()
        .map(|id| serde_json::from_value(contact_json(id, &[])).expect("contact"))
        .collect();
    FakeGhl::with_strangers(&contacts, strangers)
}

/// `record`'s webhook, of `location`.
fn record_of(location: &str, id: &str, kind: &str, contact: &str, tags: &[&str]) -> Record {
    let mut record = record(id, kind, contact, tags);
    let EnrichJob::Webhook { body, .. } = serde_json::from_str(&record.body).expect("job") else {
        panic!("a webhook job")
    };
    let mut body: serde_json::Value = serde_json::from_str(&body).expect("json");
    body["locationId"] = location.into();
    let job = EnrichJob::Webhook {
        key: id.into(),
        received_at: now(),
        body: body.to_string(),
    };
    record.body = serde_json::to_string(&job).expect("json");
    record
}

/// The pixels a new contact's webhook of `location` reaches, with no token or
/// install here for `strangers`: and whether GHL was read.
async fn pixels_reached(location: &str, strangers: &[&str]) -> (Vec<String>, bool) {
    let stages = Stages::default();
    let ghl = ghl_without(strangers);
    let records = [record_of(location, "w1", "ContactCreate", "c1", &[])];
    assert!(stages.run(&ghl, &records).await.is_empty());
    assert!(stages.dead.sent().is_empty());
    let pixels = queued(&stages.dispatch)
        .into_iter()
        .map(|j| j.pixel)
        .collect();
    (pixels, !ghl.reads().is_empty())
}

#[tokio::test]
async fn a_location_with_no_token_or_install_reaches_no_pixel_kept_for_all_locations() {
    let (pixels, read) = pixels_reached("loc", &["loc"]).await;
    assert!(pixels.is_empty(), "nothing for pixel main");
    assert!(!read, "dropped before any GHL call");
    // Connected, the same webhook reaches it.
    assert_eq!(pixels_reached("loc", &[]).await.0, ["main"]);
}

#[tokio::test]
async fn a_pixel_naming_the_location_still_takes_its_webhooks() {
    let (pixels, _) = pixels_reached("loc2", &["loc2"]).await;
    assert_eq!(pixels, ["second"], "only the pixel that names loc2");
}

#[tokio::test]
async fn a_location_with_no_token_or_install_moves_no_audience_kept_for_all_locations() {
    let mapping = fixtures::mapping_with(&fixtures::audiences(r#"{ env = "ADS_TOKEN" }"#));
    for (strangers, changes) in [(&["loc"][..], 0), (&[][..], 1)] {
        let stages = Stages::default();
        let records = [record_of("loc", "w1", "ContactCreate", "c1", &["vip"])];
        let failed = stages
            .enrich_with(&mapping, &ghl_without(strangers), &records, now())
            .await;
        assert!(failed.is_empty());
        let joined = stages
            .dispatch
            .sent()
            .iter()
            .filter(|m| m.body.contains("\"audience\""))
            .count();
        assert_eq!(joined, changes, "strangers {strangers:?}");
    }
}
