//! Contract tests: the reads behind a location's names, against Prism mocks of
//! GHL's own specs (`../shared/ghl/apps/`: opportunities, locations, calendars),
//! started by `scripts/test.sh`: each request must pass Prism's validation (path,
//! query, `Authorization` and the spec's own `Version`), and the spec's example
//! answer must read as our types.

use std::collections::HashMap;
use std::time::Duration;

use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::tokens::FixedTokens;
use ghl_capi::ghl::wire::LocationToken;

const LOCATION: &str = "ve9EPM428h8vShlRW1KT";

fn client(var: &str) -> GhlClient<FixedTokens> {
    let url = std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the tests with scripts/test.sh, which starts Prism")
    });
    let tokens = HashMap::from([(LOCATION.to_owned(), LocationToken("pit-contract".into()))]);
    GhlClient::new(&url, FixedTokens(tokens), Duration::from_secs(10)).expect("client")
}

#[tokio::test]
async fn the_pipelines_list_matches_ghls_spec() {
    let pipelines = client("PRISM_OPPORTUNITIES_URL")
        .pipelines(LOCATION)
        .await
        .unwrap_or_else(|e| panic!("the pipelines list breaks the contract: {e}"));
    let first = pipelines.first().expect("the spec's example");
    assert_eq!(
        (first.id.as_str(), first.name.as_str()),
        ("aWdODOBVOlH1RUFKWQke", "new pipeline")
    );
}

#[tokio::test]
async fn the_custom_fields_list_matches_ghls_spec() {
    let fields = client("PRISM_LOCATIONS_URL")
        .custom_fields(LOCATION)
        .await
        .unwrap_or_else(|e| panic!("the custom fields list breaks the contract: {e}"));
    let first = fields.first().expect("the spec's example");
    assert_eq!(
        (
            first.id.as_str(),
            first.name.as_str(),
            first.field_key.as_str()
        ),
        ("3sv6UEo51C9Bmpo1cKTq", "pincode", "contact.pincode")
    );
}

#[tokio::test]
async fn the_calendars_list_matches_ghls_spec_with_its_own_version() {
    let calendars = client("PRISM_CALENDARS_URL")
        .calendars(LOCATION)
        .await
        .unwrap_or_else(|e| panic!("the calendars list breaks the contract: {e}"));
    let first = calendars.first().expect("the spec's example");
    assert_eq!(
        (first.id.as_str(), first.name.as_str()),
        ("0TkCdp9PfvLeWKYRRvIz", "test calendar")
    );
}

#[tokio::test]
async fn the_tags_list_matches_ghls_spec() {
    let tags = client("PRISM_LOCATIONS_URL")
        .tags(LOCATION)
        .await
        .unwrap_or_else(|e| panic!("the tags list breaks the contract: {e}"));
    let first = tags.first().expect("the spec's example");
    assert_eq!(
        (first.id.as_str(), first.name.as_str()),
        ("flGwEuzsfJOia1i1ikRN", "minim aliquip anim")
    );
}
