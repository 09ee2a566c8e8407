//! Meta and GHL as local HTTP servers (wiremock) that check what we send and can
//! fail the way the real ones do.

use std::sync::{Arc, Mutex};

use ghl_capi::capi::client::DEFAULT_API_VERSION;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Meta's Conversions API as it behaves: one invalid event (named `Refused`, or a
/// `Purchase` without `custom_data`) refuses the whole request with code 100; a
/// request with another token than the expected one is refused with code 190; it
/// can be down (`503`) for the next few requests. Every request it took is kept.
#[derive(Debug, Clone, Default)]
pub struct MetaStandIn {
    requests: Arc<Mutex<Vec<Value>>>,
    outages: Arc<Mutex<u32>>,
    token: Option<String>,
}

impl MetaStandIn {
    /// A stand-in that takes only requests carrying `token`.
    pub fn expecting_token(token: &str) -> Self {
        MetaStandIn {
            token: Some(token.to_owned()),
            ..MetaStandIn::default()
        }
    }

    /// Serves `POST /{version}/{dataset}/events` on `server`.
    pub async fn mount(&self, server: &MockServer, dataset: &str) {
        Mock::given(method("POST"))
            .and(path(format!("/{DEFAULT_API_VERSION}/{dataset}/events")))
            .respond_with(self.clone())
            .mount(server)
            .await;
    }

    /// The next `n` requests get `503`.
    pub fn fail_next(&self, n: u32) {
        *self.outages.lock().expect("lock") = n;
    }

    /// Every request Meta took (answered `200`), in order.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().expect("lock").clone()
    }

    /// Every event of every request Meta took.
    pub fn events(&self) -> Vec<Value> {
        self.requests()
            .iter()
            .flat_map(|r| r["data"].as_array().cloned().unwrap_or_default())
            .collect()
    }
}

fn refusal(code: u32, subcode: Option<u32>, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(400).set_body_json(json!({"error": {
        "message": "Invalid parameter", "type": "OAuthException", "code": code,
        "error_subcode": subcode, "error_user_msg": message, "fbtrace_id": "A-refused"}}))
}

impl Respond for MetaStandIn {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        {
            let mut outages = self.outages.lock().expect("lock");
            if *outages > 0 {
                *outages -= 1;
                return ResponseTemplate::new(503);
            }
        }
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return refusal(100, None, "the body is not JSON");
        };
        if let Some(token) = &self.token
            && body["access_token"] != *token
        {
            return refusal(190, Some(467), "Invalid OAuth access token");
        }
        let events = body["data"].as_array().cloned().unwrap_or_default();
        if events.iter().any(|e| e["event_name"] == "Refused") {
            return refusal(100, None, "The event is refused");
        }
        if events
            .iter()
            .any(|e| e["event_name"] == "Purchase" && e.get("custom_data").is_none())
        {
            return refusal(100, Some(2_804_009), "Purchase events need a value");
        }
        self.requests.lock().expect("lock").push(body);
        ResponseTemplate::new(200).set_body_json(
            json!({"events_received": events.len(), "messages": [], "fbtrace_id": "A-ok"}),
        )
    }
}

/// GHL serves `contact` at `GET /contacts/{id}` to requests with `token` and the
/// version header it requires, with rate-limit headroom to spare.
pub async fn ghl_serves(server: &MockServer, contact: &Value, token: &str) {
    Mock::given(method("GET"))
        .and(path(format!(
            "/contacts/{}",
            contact["id"].as_str().expect("id")
        )))
        .and(header("authorization", format!("Bearer {token}")))
        .and(header("version", "2021-07-28"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-RateLimit-Remaining", "99")
                .set_body_json(json!({"contact": contact})),
        )
        .mount(server)
        .await;
}
