//! Contract test: the opportunity search as reconciliation asks it, against a
//! Prism mock of GHL's own spec (`../shared/ghl/apps/opportunities.json`), started
//! by `scripts/test.sh`: the request must pass Prism's validation (path, query,
//! `Authorization` and `Version`), and the spec's example answer must read as our
//! types, its cursor included.

use std::collections::HashMap;
use std::time::Duration;

use ghl_capi::ghl::budget::Use;
use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::opportunities_api::Cursor;
use ghl_capi::ghl::tokens::FixedTokens;
use ghl_capi::ghl::wire::LocationToken;

const LOCATION: &str = "ve9EPM428h8vShlRW1KT";

fn client() -> GhlClient<FixedTokens> {
    let url = std::env::var("PRISM_OPPORTUNITIES_URL").expect(
        "PRISM_OPPORTUNITIES_URL is not set: run the tests with scripts/test.sh, which starts Prism",
    );
    let tokens = HashMap::from([(LOCATION.to_owned(), LocationToken("pit-contract".into()))]);
    GhlClient::new(&url, FixedTokens(tokens), Duration::from_secs(10)).expect("client")
}

#[tokio::test]
async fn the_opportunity_search_matches_ghls_spec() {
    let ghl = client();
    let first = ghl
        .search_opportunities((LOCATION, Use::Command), None)
        .await
        .unwrap_or_else(|e| panic!("the first page breaks the contract: {e}"));
    let listed = first.opportunities.first().expect("the spec's example");
    assert_eq!(listed.id, "yWQobCRIhRguQtD2llvk");
    assert_eq!(listed.status.as_deref(), Some("open"));
    assert!(listed.pipeline_stage_id.is_some() && listed.contact_id.is_some());
    // One opportunity is less than a page: the listing ends there.
    assert_eq!(first.next, None);
    let cursor = Cursor {
        start_after: "1625203104328".into(),
        start_after_id: "yWQobCRIhRguQtD2llvk".into(),
    };
    ghl.search_opportunities((LOCATION, Use::Command), Some(&cursor))
        .await
        .unwrap_or_else(|e| panic!("a page by cursor breaks the contract: {e}"));
}
