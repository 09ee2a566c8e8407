//! Listing a location's contacts past the search's reach: `page` up to 10,000,
//! then the last contact's `searchAfter` cursor; without a cursor, the listing
//! stops at the reach and says how many lay beyond. GHL's `429`s and outages are
//! waited out page by page, up to the listing's patience.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ghl_capi::ghl::budget::Use;
use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::tokens::FixedTokens;
use ghl_capi::ghl::wire::LocationToken;
use ghl_capi::pull::listing::{Lister, Patience};
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// GHL in trouble before `inner` answers: the first `down` calls `503`, then
/// every third a `429` naming a 10 ms interval.
struct Troubled {
    inner: Search,
    down: u64,
    calls: AtomicU64,
}

impl Respond for Troubled {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        if n <= self.down {
            return ResponseTemplate::new(503);
        }
        if n.is_multiple_of(3) {
            return ResponseTemplate::new(429)
                .insert_header("X-RateLimit-Interval-Milliseconds", "10")
                .insert_header("X-RateLimit-Remaining", "0");
        }
        self.inner.respond(request)
    }
}

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
    list_from(search, Patience::default())
        .await
        .expect("listed")
}

async fn list_from(
    search: impl Respond + 'static,
    patience: Patience,
) -> Result<(BTreeSet<String>, u64, u64), ghl_capi::ghl::GhlError> {
    let ghl = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(search)
        .mount(&ghl)
        .await;
    let tokens = HashMap::from([("loc1".to_owned(), LocationToken("pit".into()))]);
    let client =
        GhlClient::new(&ghl.uri(), FixedTokens(tokens), Duration::from_secs(5)).expect("client");
    let mut pages = Lister::new(&client, ("loc1", Use::Backfill), Vec::new()).patient(patience);
    let mut ids = BTreeSet::new();
    while let Some(contacts) = pages.next_page().await? {
        for c in contacts {
            assert!(ids.insert(c.id.clone()), "{} listed twice", c.id);
        }
    }
    Ok((ids, pages.listed, pages.beyond))
}

const QUICK: Patience = Patience {
    tries: 4,
    outage_wait: Duration::from_millis(5),
};

#[tokio::test]
async fn ghls_limits_and_a_short_outage_are_waited_out_page_by_page() {
    let troubled = Troubled {
        inner: Search {
            n: 950,
            cursors: false,
        },
        down: 3,
        calls: AtomicU64::new(0),
    };
    let (ids, listed, _) = list_from(troubled, QUICK).await.expect("listed");
    assert_eq!((ids.len(), listed), (950, 950), "each contact once");
}

#[tokio::test]
async fn an_outage_longer_than_the_patience_fails_the_listing_with_ghls_error() {
    let troubled = Troubled {
        inner: Search {
            n: 10,
            cursors: false,
        },
        down: 4,
        calls: AtomicU64::new(0),
    };
    let failed = list_from(troubled, QUICK).await.expect_err("gave up");
    assert!(
        matches!(failed, ghl_capi::ghl::GhlError::Unavailable { .. }),
        "{failed}"
    );
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
