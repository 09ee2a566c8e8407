//! Listing a location's contacts past the search's reach: `page` up to 10,000,
//! then the last contact's `searchAfter` cursor; without a cursor, the listing
//! stops at the reach and says how many lay beyond.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::tokens::FixedTokens;
use ghl_capi::ghl::wire::LocationToken;
use ghl_capi::ops::listing::Lister;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// GHL's search over `n` contacts: `page` × `pageLimit` within 10,000 (beyond,
/// GHL refuses), or a `searchAfter` cursor, which each contact carries when
/// `cursors` is set.
struct Search {
    n: usize,
    cursors: bool,
}

impl Respond for Search {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).expect("json");
        let limit = body["pageLimit"].as_u64().expect("pageLimit") as usize;
        let start = match (&body["searchAfter"], body["page"].as_u64()) {
            (Value::Array(after), None) => after[0].as_u64().expect("cursor") as usize + 1,
            (Value::Null, Some(page)) if page as usize * limit <= 10_000 => {
                (page as usize - 1) * limit
            }
            _ => {
                return ResponseTemplate::new(422)
                    .set_body_string(r#"{"message":"page too deep"}"#);
            }
        };
        let contacts: Vec<Value> = (start..self.n.min(start + limit))
            .map(|i| {
                let mut c = json!({"id": format!("c{i}"), "locationId": "loc1", "tags": []});
                if self.cursors {
                    c["searchAfter"] = json!([i]);
                }
                c
            })
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({"contacts": contacts, "total": self.n}))
    }
}

async fn list(search: Search) -> (BTreeSet<String>, u64, u64) {
    let ghl = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(search)
        .mount(&ghl)
        .await;
    let tokens = HashMap::from([("loc1".to_owned(), LocationToken("pit".into()))]);
    let client =
        GhlClient::new(&ghl.uri(), FixedTokens(tokens), Duration::from_secs(5)).expect("client");
    let mut pages = Lister::new(&client, "loc1", Vec::new());
    let mut ids = BTreeSet::new();
    while let Some(contacts) = pages.next_page().await.expect("a page") {
        for c in contacts {
            assert!(ids.insert(c.id.clone()), "{} listed twice", c.id);
        }
    }
    (ids, pages.listed, pages.beyond)
}

#[tokio::test]
async fn past_ten_thousand_the_listing_follows_the_last_contacts_cursor() {
    let (ids, listed, beyond) = list(Search {
        n: 10_250,
        cursors: true,
    })
    .await;
    assert_eq!((ids.len(), listed, beyond), (10_250, 10_250, 0));
}

#[tokio::test]
async fn without_a_cursor_the_listing_stops_at_the_reach_and_counts_the_rest() {
    let (ids, listed, beyond) = list(Search {
        n: 10_250,
        cursors: false,
    })
    .await;
    assert_eq!((ids.len(), listed, beyond), (10_000, 10_000, 250));
}
