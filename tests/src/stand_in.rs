//! Meta and GHL as local HTTP servers (wiremock) that check what we send and can
//! fail the way the real ones do.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ghl_capi::capi::client::DEFAULT_API_VERSION;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Meta's Conversions API as it behaves: one invalid event (named `Refused`, or a
/// `Purchase` without `custom_data`) refuses the whole request with code 100; a
/// request with another token than the expected one is refused with code 190; it
/// can be down (`503`) for the next few requests or for a while, and fail every
/// n-th request with a `500`. It serves one Graph API version, refuses what Meta
/// refuses new apps since v27.0 on every version ([`new_app_refusal`]), and can
/// flag its version as auto-upgraded or deprecated. Every request it took is kept.
#[derive(Debug, Clone)]
pub struct MetaStandIn {
    /// Each request it took, with when.
    requests: Arc<Mutex<Vec<(Instant, Value)>>>,
    outages: Arc<Mutex<u32>>,
    faults: Arc<Faults>,
    token: Option<String>,
    version: String,
    /// How it flags its version, if it does.
    flag: Option<VersionFlag>,
}

/// How Meta flags a version on its way out (`reference/meta-capi.md` §10.1).
#[derive(Debug, Clone)]
pub enum VersionFlag {
    /// Calls are auto-upgraded, and the answer says so in `X-Ad-Api-Version-Warning`.
    AutoUpgraded(String),
    /// Calls are refused with error 2635.
    Deprecated,
}

impl Default for MetaStandIn {
    fn default() -> Self {
        MetaStandIn {
            requests: Arc::default(),
            outages: Arc::default(),
            faults: Arc::default(),
            token: None,
            version: DEFAULT_API_VERSION.to_owned(),
            flag: None,
        }
    }
}

/// What Meta refuses new apps since v27.0, on every version: HTTP method
/// override, JSONP, multi-id requests, date formatting and field aliases. A
/// request using any of them is answered as Meta answers an invalid parameter.
pub fn new_app_refusal(request: &Request) -> Option<ResponseTemplate> {
    let refused = [
        "method",
        "callback",
        "jsonp",
        "ids",
        "date_format",
        "suppress_http_code",
    ];
    let mut used: Vec<String> = request
        .url
        .query_pairs()
        .filter(|(k, v)| refused.contains(&k.as_ref()) || (k == "fields" && v.contains(".as(")))
        .map(|(k, _)| k.into_owned())
        .collect();
    if request.headers.contains_key("x-http-method-override") {
        used.push("X-HTTP-Method-Override".into());
    }
    (!used.is_empty()).then(|| {
        refusal(
            100,
            None,
            &format!("{} not supported for new apps", used.join(", ")),
        )
    })
}

/// Failures a stand-in injects: down until a time, and every n-th request.
#[derive(Debug, Default)]
struct Faults {
    down_until: Mutex<Option<Instant>>,
    every: AtomicU64,
    seen: AtomicU64,
}

impl Faults {
    /// Whether this request fails: while down, or as the n-th.
    fn fail(&self) -> bool {
        let n = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
        let every = self.every.load(Ordering::Relaxed);
        let down = self
            .down_until
            .lock()
            .expect("lock")
            .is_some_and(|until| Instant::now() < until);
        down || (every > 0 && n.is_multiple_of(every))
    }

    fn down_for(&self, outage: Duration) {
        *self.down_until.lock().expect("lock") = Some(Instant::now() + outage);
    }

    fn back_at(&self) -> Option<Instant> {
        *self.down_until.lock().expect("lock")
    }
}

impl MetaStandIn {
    /// A stand-in that takes only requests carrying `token`.
    pub fn expecting_token(token: &str) -> Self {
        MetaStandIn {
            token: Some(token.to_owned()),
            ..MetaStandIn::default()
        }
    }

    /// Serves another Graph API version than the default.
    pub fn at_version(self, version: &str) -> Self {
        MetaStandIn {
            version: version.to_owned(),
            ..self
        }
    }

    /// Flags its version as Meta flags one on its way out.
    pub fn flagging(self, flag: VersionFlag) -> Self {
        MetaStandIn {
            flag: Some(flag),
            ..self
        }
    }

    /// Serves `POST /{version}/{dataset}/events` on `server`.
    pub async fn mount(&self, server: &MockServer, dataset: &str) {
        Mock::given(method("POST"))
            .and(path(format!("/{}/{dataset}/events", self.version)))
            .respond_with(self.clone())
            .mount(server)
            .await;
    }

    /// The next `n` requests get `503`.
    pub fn fail_next(&self, n: u32) {
        *self.outages.lock().expect("lock") = n;
    }

    /// From now on, every `n`-th request gets `500` (5: a fifth of them).
    pub fn fail_every(&self, n: u64) {
        self.faults.every.store(n, Ordering::Relaxed);
    }

    /// Every request gets `503` for `outage` from now.
    pub fn down_for(&self, outage: Duration) {
        self.faults.down_for(outage);
    }

    /// Every request Meta took (answered `200`), in order.
    pub fn requests(&self) -> Vec<Value> {
        let taken = self.requests.lock().expect("lock");
        taken.iter().map(|(_, request)| request.clone()).collect()
    }

    /// Every event of every request Meta took, with when it took it.
    pub fn events_at(&self) -> Vec<(Instant, Value)> {
        let taken = self.requests.lock().expect("lock");
        (taken.iter())
            .flat_map(|(at, r)| {
                let events = r["data"].as_array().cloned().unwrap_or_default();
                events.into_iter().map(move |e| (*at, e))
            })
            .collect()
    }

    /// When its last outage ([`MetaStandIn::down_for`]) ends, or ended.
    pub fn back_at(&self) -> Option<Instant> {
        self.faults.back_at()
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
        if self.faults.fail() {
            return ResponseTemplate::new(500).set_body_string("<html>Internal error</html>");
        }
        if let Some(refused) = new_app_refusal(request) {
            return refused;
        }
        if let Some(VersionFlag::Deprecated) = self.flag {
            return refusal(2635, None, &format!("{} is deprecated", self.version));
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
        self.requests
            .lock()
            .expect("lock")
            .push((Instant::now(), body));
        let answer = ResponseTemplate::new(200).set_body_json(
            json!({"events_received": events.len(), "messages": [], "fbtrace_id": "A-ok"}),
        );
        match &self.flag {
            Some(VersionFlag::AutoUpgraded(warning)) => {
                answer.insert_header("X-Ad-Api-Version-Warning", warning.as_str())
            }
            _ => answer,
        }
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

/// GHL's contacts API for any number of contacts: `GET /contacts/{id}` answers a
/// contact made from its id (`{id}@example.com`, tagged `vip`) to requests with the
/// token and version header it requires; ids starting `gone-` are `404`. It can be
/// down (`503`) for a while and rate-limit every n-th request (`429` with GHL's
/// headers and a scaled interval).
#[derive(Debug, Clone)]
pub struct GhlStandIn {
    token: String,
    faults: Arc<Faults>,
    /// The interval a `429` asks to wait.
    interval: Duration,
}

impl GhlStandIn {
    pub fn new(token: &str) -> Self {
        GhlStandIn {
            token: token.to_owned(),
            faults: Arc::default(),
            interval: Duration::from_millis(200),
        }
    }

    pub async fn mount(&self, server: &MockServer) {
        Mock::given(method("GET"))
            .respond_with(self.clone())
            .mount(server)
            .await;
    }

    /// From now on, every `n`-th request is rate-limited.
    pub fn rate_limit_every(&self, n: u64) {
        self.faults.every.store(n, Ordering::Relaxed);
    }

    /// Every request gets `503` for `outage` from now.
    pub fn down_for(&self, outage: Duration) {
        self.faults.down_for(outage);
    }

    /// When its last outage ([`GhlStandIn::down_for`]) ends, or ended.
    pub fn back_at(&self) -> Option<Instant> {
        self.faults.back_at()
    }

    /// Requests answered so far, failures included.
    pub fn requests(&self) -> u64 {
        self.faults.seen.load(Ordering::Relaxed)
    }
}

impl Respond for GhlStandIn {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let authorized = request
            .headers
            .get("authorization")
            .is_some_and(|v| v.as_bytes() == format!("Bearer {}", self.token).as_bytes());
        if !authorized || request.headers.get("version").is_none() {
            return ResponseTemplate::new(401).set_body_json(json!({"message": "Unauthorized"}));
        }
        let down = self
            .faults
            .down_until
            .lock()
            .expect("lock")
            .is_some_and(|until| Instant::now() < until);
        if self.faults.fail() && !down {
            return ResponseTemplate::new(429)
                .insert_header("X-RateLimit-Remaining", "0")
                .insert_header(
                    "X-RateLimit-Interval-Milliseconds",
                    self.interval.as_millis().to_string(),
                );
        }
        if down {
            return ResponseTemplate::new(503).set_body_string("Service Unavailable");
        }
        let Some(id) = request.url.path().strip_prefix("/contacts/") else {
            return ResponseTemplate::new(404);
        };
        if id.starts_with("gone-") {
            return ResponseTemplate::new(404)
                .set_body_json(json!({"message": "Contact not found"}));
        }
        let contact = crate::fixtures::contact(id, &format!("{id}@example.com"), &["vip"]);
        ResponseTemplate::new(200)
            .insert_header("X-RateLimit-Remaining", "99")
            .set_body_json(json!({"contact": contact}))
    }
}
