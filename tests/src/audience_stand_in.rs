//! Meta's Custom Audiences `/users` edge as a local HTTP server that checks each
//! request exactly (method, path, token, schema, every row's shape, the session
//! fields) and keeps each audience's members, so a test can ask who is in.
//! It can be down, or refuse as a flagged audience does.
//!
//! Its `usersreplace` edge keeps Meta's session rules (`reference/meta-capi.md`
//! §10.2): `batch_seq` starts at 1 and a 1 starts a new replace; one replace at a
//! time (`2650`/`1870145`); no `/users` call while one runs (refused alike, and
//! counted as a breach); the session window (`1870158`, the audience keeping what
//! arrived); a batch of a session that never began (`1870147`) or has finished
//! (`1870159`); the batch flagged last ends it, and the list becomes its rows.
//! `GET /{audience}/sessions` lists each session and how far it is.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ghl_capi::capi::audience::{LDU_COLUMNS, SCHEMA};
use ghl_capi::capi::client::DEFAULT_API_VERSION;

use crate::stand_in::new_app_refusal;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// One request as the stand-in took it.
#[derive(Debug, Clone, PartialEq)]
pub struct Taken {
    pub audience_id: String,
    /// `POST` (add) or `DELETE` (remove).
    pub method: String,
    pub rows: Vec<Vec<String>>,
    pub session: Option<Value>,
}

#[derive(Debug, Default)]
struct State {
    taken: Vec<Taken>,
    /// Per audience, its members' rows.
    members: HashMap<String, BTreeSet<Vec<String>>>,
    /// Per session id, the last batch number seen.
    sessions: HashMap<u64, u64>,
    /// The next requests answered `503`.
    outages: u32,
    /// Every request refused as a flagged audience is.
    blocked: bool,
    /// Per audience, the replace under way.
    replacing: HashMap<String, Replacing>,
    /// Every replace session seen: its id, rows received, whether finished.
    replaces: Vec<(u64, u64, bool)>,
    /// How long a replace session lasts.
    window: Option<Duration>,
    /// The next replace batches answered "an update is in progress"; per
    /// `batch_seq`, how often it is answered "something went wrong".
    busy: u32,
    wrong: HashMap<u64, u32>,
    /// Breaches of Meta's rules: a `/users` call during a replace, a second
    /// `batch_seq` 1 within a session.
    breaches: Vec<String>,
}

/// A replace under way.
#[derive(Debug)]
struct Replacing {
    session_id: u64,
    started: Instant,
    rows: BTreeSet<Vec<String>>,
}

/// The `/users` edge of the audiences it is mounted for, at one Graph API
/// version, refusing what Meta refuses new apps ([`new_app_refusal`]).
#[derive(Debug, Clone)]
pub struct AudienceStandIn {
    token: String,
    version: String,
    state: Arc<Mutex<State>>,
}

impl AudienceStandIn {
    /// A stand-in that takes only requests carrying `token`.
    pub fn expecting_token(token: &str) -> Self {
        AudienceStandIn {
            token: token.to_owned(),
            version: DEFAULT_API_VERSION.to_owned(),
            state: Arc::default(),
        }
    }

    /// Serves another Graph API version than the default.
    pub fn at_version(self, version: &str) -> Self {
        AudienceStandIn {
            version: version.to_owned(),
            ..self
        }
    }

    /// Serves `POST` and `DELETE /{version}/{audience_id}/users` on `server`, and
    /// `GET /{version}/{audience_id}` (its name and `operation_status`, 471 once
    /// blocked) to a request bearing the token.
    pub async fn mount(&self, server: &MockServer, audience_id: &str) {
        Mock::given(method("GET"))
            .and(path(format!("/{}/{audience_id}", self.version)))
            .and(header("authorization", format!("Bearer {}", self.token)))
            .respond_with(self.clone())
            .mount(server)
            .await;
        for verb in ["POST", "DELETE"] {
            Mock::given(method(verb))
                .and(path(format!("/{}/{audience_id}/users", self.version)))
                .respond_with(self.clone())
                .mount(server)
                .await;
        }
        for (verb, edge) in [("POST", "usersreplace"), ("GET", "sessions")] {
            Mock::given(method(verb))
                .and(path(format!("/{}/{audience_id}/{edge}", self.version)))
                .respond_with(Replaces(self.clone()))
                .mount(server)
                .await;
        }
    }

    /// A replace session lasts `window` (Meta's: 90 minutes).
    pub fn session_window(&self, window: Duration) {
        self.state.lock().expect("lock").window = Some(window);
    }

    /// The next `busy` replace batches are answered "an update is in progress";
    /// batch `seq` is answered "something went wrong" `wrong` times.
    pub fn replace_trouble(&self, busy: u32, (seq, wrong): (u64, u32)) {
        let mut state = self.state.lock().expect("lock");
        state.busy = busy;
        state.wrong.insert(seq, wrong);
    }

    /// Each replace session: its id, the rows it received, whether it finished.
    pub fn sessions(&self) -> Vec<(u64, u64, bool)> {
        self.state.lock().expect("lock").replaces.clone()
    }

    /// What broke Meta's replace rules (empty when nothing did).
    pub fn breaches(&self) -> Vec<String> {
        self.state.lock().expect("lock").breaches.clone()
    }

    /// Whether a replace of `audience_id` is under way.
    pub fn replacing(&self, audience_id: &str) -> bool {
        self.state
            .lock()
            .expect("lock")
            .replacing
            .contains_key(audience_id)
    }

    /// The next `n` requests get `503`.
    pub fn fail_next(&self, n: u32) {
        self.state.lock().expect("lock").outages = n;
    }

    /// From now on every request is refused as an audience flagged for health or
    /// financial data is (`100`/`1713230`).
    pub fn block(&self) {
        self.state.lock().expect("lock").blocked = true;
    }

    /// Every request it took, in order.
    pub fn taken(&self) -> Vec<Taken> {
        self.state.lock().expect("lock").taken.clone()
    }

    /// The rows in `audience_id` now.
    pub fn members(&self, audience_id: &str) -> BTreeSet<Vec<String>> {
        let state = self.state.lock().expect("lock");
        state.members.get(audience_id).cloned().unwrap_or_default()
    }

    /// The reason a request is malformed, if it is.
    fn check(&self, state: &mut State, body: &Value) -> Result<(), String> {
        if body["access_token"] != *self.token {
            return Err("token".into());
        }
        rows(body)?;
        if let Some(session) = body.get("session") {
            let id = session["session_id"].as_u64().ok_or("session_id")?;
            let seq = session["batch_seq"].as_u64().ok_or("batch_seq")?;
            let last = state.sessions.get(&id).copied().unwrap_or(0);
            if seq != last + 1 || session["estimated_num_total"].as_u64().is_none() {
                return Err(format!("session {session}"));
            }
            if session["last_batch_flag"]
                .as_bool()
                .ok_or("last_batch_flag")?
            {
                state.sessions.remove(&id);
            } else {
                state.sessions.insert(id, seq);
            }
        }
        Ok(())
    }
}

/// The audience a request's path names (`/{version}/{audience_id}/…`).
fn audience_of(request: &Request) -> String {
    request
        .url
        .path_segments()
        .and_then(|mut s| s.nth(1))
        .unwrap_or_default()
        .to_owned()
}

fn refusal(code: u32, subcode: Option<u32>, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(400).set_body_json(json!({"error": {
        "message": message, "type": "OAuthException", "code": code,
        "error_subcode": subcode, "fbtrace_id": "A-refused"}}))
}

impl Respond for AudienceStandIn {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if let Some(refused) = new_app_refusal(request) {
            return refused;
        }
        let mut state = self.state.lock().expect("lock");
        if request.method.as_str() == "GET" {
            let fields = request.url.query_pairs().find(|(k, _)| k == "fields");
            if fields.is_none_or(|(_, v)| v != "name,operation_status") {
                return refusal(100, None, "Invalid parameter: fields");
            }
            let code = if state.blocked { 471 } else { 200 };
            return ResponseTemplate::new(200).set_body_json(json!({"id": "audience",
                "name": "Webinar VIPs", "operation_status": {"code": code, "description": "status"}}));
        }
        if state.outages > 0 {
            state.outages -= 1;
            return ResponseTemplate::new(503);
        }
        if state.blocked {
            return refusal(100, Some(1_713_230), "Audience Upload Blocked");
        }
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return refusal(100, None, "the body is not JSON");
        };
        let audience_id = audience_of(request);
        if state.replacing.contains_key(&audience_id) {
            state
                .breaches
                .push(format!("{} /users during a replace", request.method));
            return refusal(2650, Some(1_870_145), "An update is in progress");
        }
        if let Err(why) = self.check(&mut state, &body) {
            return match why.as_str() {
                "token" => refusal(190, Some(467), "Invalid OAuth access token"),
                _ => refusal(100, None, &format!("Invalid parameter: {why}")),
            };
        }
        let rows = rows(&body).unwrap_or_default();
        let members = state.members.entry(audience_id.clone()).or_default();
        let verb = request.method.as_str().to_owned();
        for row in &rows {
            if verb == "DELETE" {
                members.remove(row);
            } else {
                members.insert(row.clone());
            }
        }
        state.taken.push(Taken {
            audience_id: audience_id.clone(),
            method: verb,
            rows: rows.clone(),
            session: body.get("session").cloned(),
        });
        ResponseTemplate::new(200).set_body_json(json!({"audience_id": audience_id,
            "session_id": body["session"]["session_id"], "num_received": rows.len(),
            "num_invalid_entries": 0, "invalid_entry_samples": {}}))
    }
}

/// The `usersreplace` and `sessions` edges of an [`AudienceStandIn`].
#[derive(Debug, Clone)]
struct Replaces(AudienceStandIn);

/// The rows of a body, if each is a hashed row of the schema's length.
fn rows_of(body: &Value) -> Option<Vec<Vec<String>>> {
    rows(body).ok()
}

/// A body's rows as Meta checks them: the schema (the 13 keys, and the Limited
/// Data Use columns or not), and each row 13 hashes (or `""`), then, with LDU,
/// `["LDU"]` or `[]` and two codes. Each row comes back as text, the LDU columns
/// as the library's `Row` keeps them (`"LDU"` or `""`, the codes).
fn rows(body: &Value) -> Result<Vec<Vec<String>>, String> {
    let schema: Vec<&str> = body["payload"]["schema"]
        .as_array()
        .ok_or("no schema")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let with_ldu: Vec<&str> = SCHEMA.iter().chain(&LDU_COLUMNS).copied().collect();
    let ldu = if schema == SCHEMA {
        false
    } else if schema == with_ldu {
        true
    } else {
        return Err(format!("schema {schema:?}"));
    };
    let data = body["payload"]["data"].as_array().ok_or("no data")?;
    if data.is_empty() || data.len() > 10_000 {
        return Err(format!("{} rows", data.len()));
    }
    let hashed = |v: &Value| {
        v.as_str().is_some_and(|s| {
            s.is_empty()
                || (s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        })
    };
    let mut rows = Vec::new();
    for row in data {
        let values = row.as_array().ok_or("a row is not a list")?;
        let width = SCHEMA.len() + if ldu { LDU_COLUMNS.len() } else { 0 };
        if values.len() != width || !values[..SCHEMA.len()].iter().all(hashed) {
            return Err(format!("row {row}"));
        }
        let mut text: Vec<String> = values[..SCHEMA.len()]
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect();
        if ldu {
            let option = match &values[SCHEMA.len()] {
                Value::Array(list) if list.is_empty() => "",
                Value::Array(list) if list == &[json!("LDU")] => "LDU",
                other => return Err(format!("data processing options {other}")),
            };
            let code = |v: &Value| v.as_u64().ok_or(format!("a code {v}"));
            let (country, state) = (code(&values[14])?, code(&values[15])?);
            text.extend([option.to_owned(), country.to_string(), state.to_string()]);
        }
        rows.push(text);
    }
    Ok(rows)
}

impl Respond for Replaces {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if let Some(refused) = new_app_refusal(request) {
            return refused;
        }
        let this = &self.0;
        let mut state = this.state.lock().expect("lock");
        let audience = audience_of(request);
        if request.method.as_str() == "GET" {
            let data: Vec<Value> = state
                .replaces
                .iter()
                .map(|(id, received, done)| {
                    let (stage, progress) = if *done {
                        ("finished", 100)
                    } else {
                        ("uploading", 50)
                    };
                    json!({"session_id": id.to_string(), "stage": stage, "progress": progress,
                        "num_received": received, "num_matched": received})
                })
                .collect();
            return ResponseTemplate::new(200).set_body_json(json!({ "data": data }));
        }
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return refusal(100, None, "the body is not JSON");
        };
        if body["access_token"] != *this.token {
            return refusal(190, Some(467), "Invalid OAuth access token");
        }
        let (Some(rows), Some(id), Some(seq), Some(last)) = (
            rows_of(&body),
            body["session"]["session_id"].as_u64(),
            body["session"]["batch_seq"].as_u64(),
            body["session"]["last_batch_flag"].as_bool(),
        ) else {
            return refusal(100, None, "Invalid parameter: payload or session");
        };
        if state.busy > 0 {
            state.busy -= 1;
            return refusal(2650, Some(1_870_145), "An update is in progress");
        }
        if let Some(wrong) = state.wrong.get_mut(&seq).filter(|n| **n > 0) {
            *wrong -= 1;
            return refusal(2650, Some(1_870_148), "Something went wrong");
        }
        let window = state.window.unwrap_or(Duration::from_secs(90 * 60));
        let timed_out = state
            .replacing
            .get(&audience)
            .is_some_and(|r| r.session_id == id && r.started.elapsed() > window);
        if timed_out {
            // The audience keeps what arrived.
            let ended = state.replacing.remove(&audience).expect("under way");
            state.members.insert(audience.clone(), ended.rows);
            return refusal(2650, Some(1_870_158), "The session timed out");
        }
        match (seq, state.replacing.get(&audience).map(|r| r.session_id)) {
            (1, Some(other)) if other != id => {
                return refusal(2650, Some(1_870_145), "Another replace is in progress");
            }
            (1, running) => {
                if running == Some(id) {
                    state
                        .breaches
                        .push(format!("batch_seq 1 sent again in session {id}"));
                }
                state.replacing.insert(
                    audience.clone(),
                    Replacing {
                        session_id: id,
                        started: Instant::now(),
                        rows: BTreeSet::new(),
                    },
                );
                state.replaces.retain(|(s, ..)| *s != id);
                state.replaces.push((id, 0, false));
            }
            (_, Some(running)) if running == id => {}
            _ if state.replaces.iter().any(|(s, _, done)| *s == id && *done) => {
                return refusal(2650, Some(1_870_159), "The session has finished already");
            }
            _ => return refusal(2650, Some(1_870_147), "The first batch_seq must be 1"),
        }
        let replacing = state.replacing.get_mut(&audience).expect("under way");
        replacing.rows.extend(rows.iter().cloned());
        let received = replacing.rows.len() as u64;
        if let Some(session) = state.replaces.iter_mut().find(|(s, ..)| *s == id) {
            session.1 = received;
        }
        if last {
            let ended = state.replacing.remove(&audience).expect("under way");
            state.members.insert(audience.clone(), ended.rows);
            if let Some(session) = state.replaces.iter_mut().find(|(s, ..)| *s == id) {
                session.2 = true;
            }
        }
        ResponseTemplate::new(200).set_body_json(json!({"account_id": "act_1",
            "session_id": id.to_string(), "num_received": rows.len(),
            "num_invalid_entries": 0, "invalid_entry_samples": {}}))
    }
}
