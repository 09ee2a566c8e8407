//! GHL taking the write-back's writes, as a local HTTP server: `POST
//! /contacts/{id}/tags`, `PUT /contacts/{id}` (custom fields), `POST
//! /contacts/{id}/notes` and `/tasks`, each only with the location's token and
//! the version header, each answered as GHL's spec shows and recorded; and the
//! notes and tasks written listed back (`GET /contacts/{id}/notes`, `/tasks`). It
//! can be down (`503`) until told otherwise.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::{header, method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// One write GHL took: its method, path and body.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    pub method: String,
    pub path: String,
    pub body: Value,
}

#[derive(Debug, Default)]
struct Held {
    writes: Mutex<Vec<Write>>,
    down: AtomicBool,
}

/// GHL's write endpoints for the write-back.
#[derive(Debug, Clone, Default)]
pub struct WritesStandIn {
    held: Arc<Held>,
}

impl WritesStandIn {
    /// Serves the writes on `server` to requests bearing `token`.
    pub async fn mount(&self, server: &MockServer, token: &str) {
        let bearer = format!("Bearer {token}");
        for (verb, pattern) in [
            ("POST", r"^/contacts/[^/]+/(tags|notes|tasks)$"),
            ("PUT", r"^/contacts/[^/]+$"),
            ("GET", r"^/contacts/[^/]+/(notes|tasks)$"),
        ] {
            Mock::given(method(verb))
                .and(path_regex(pattern))
                .and(header("authorization", bearer.as_str()))
                .and(header("version", "2021-07-28"))
                .respond_with(Answer(self.clone()))
                .mount(server)
                .await;
        }
    }

    /// Serves `location`'s names: no pipelines or calendars, and `fields`, each
    /// its id and key, as `GET /locations/{id}/customFields` lists them.
    pub async fn serve_fields(&self, server: &MockServer, location: &str, fields: &[(&str, &str)]) {
        let listed: Vec<Value> = (fields.iter())
            .map(|(id, key)| json!({"id": id, "name": key, "fieldKey": key}))
            .collect();
        for (at, answer) in [
            (
                format!("/locations/{location}/customFields"),
                json!({"customFields": listed}),
            ),
            (
                "/opportunities/pipelines".to_owned(),
                json!({"pipelines": []}),
            ),
            ("/calendars/".to_owned(), json!({"calendars": []})),
        ] {
            Mock::given(method("GET"))
                .and(wiremock::matchers::path(at))
                .respond_with(ResponseTemplate::new(200).set_body_json(answer))
                .mount(server)
                .await;
        }
    }

    /// Every write taken so far, in order.
    pub fn writes(&self) -> Vec<Write> {
        self.held.writes.lock().expect("lock").clone()
    }

    /// The writes of `kind` (`tags`, `notes`, `tasks`, `fields`) so far.
    pub fn of(&self, kind: &str) -> Vec<Write> {
        fn kind_of(w: &Write) -> &str {
            match w.method.as_str() {
                "PUT" => "fields",
                _ => w.path.rsplit('/').next().unwrap_or_default(),
            }
        }
        self.writes()
            .into_iter()
            .filter(|w| kind_of(w) == kind)
            .collect()
    }

    /// `contact` as GHL's echo of the writes shows it: with the tags added and the
    /// custom fields set (each by an id, as GHL lists them).
    pub fn echo_of(&self, contact: &Value) -> Value {
        let mut echoed = contact.clone();
        for tags in self.of("tags") {
            let have = echoed["tags"].as_array_mut().expect("the contact's tags");
            have.extend(tags.body["tags"].as_array().into_iter().flatten().cloned());
        }
        let fields: Vec<Value> = (self.of("fields").iter())
            .flat_map(|w| {
                w.body["customFields"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .enumerate()
            .map(|(i, f)| json!({"id": format!("field-{i}"), "value": f["field_value"]}))
            .collect();
        echoed["customFields"] = Value::Array(fields);
        echoed
    }

    /// From now on, every request is answered `503` (`false`: served again).
    pub fn set_down(&self, down: bool) {
        self.held.down.store(down, Ordering::SeqCst);
    }
}

struct Answer(WritesStandIn);

impl Respond for Answer {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if self.0.held.down.load(Ordering::SeqCst) {
            return ResponseTemplate::new(503).set_body_string("<html>Service Unavailable</html>");
        }
        let path = request.url.path().to_owned();
        let contact = path.split('/').nth(2).unwrap_or_default().to_owned();
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let verb = request.method.as_str().to_owned();
        let listed = |kind: &str| -> Vec<Value> {
            let suffix = format!("/{kind}");
            (self.0.writes().into_iter())
                .filter(|w| {
                    w.method == "POST" && w.path.ends_with(&suffix) && w.path.contains(&contact)
                })
                .enumerate()
                .map(|(i, w)| {
                    let mut record = w.body.clone();
                    record["id"] = json!(format!("{kind}-{i}"));
                    record["contactId"] = json!(contact);
                    record
                })
                .collect()
        };
        if verb == "GET" {
            let kind = path.rsplit('/').next().unwrap_or_default().to_owned();
            return ResponseTemplate::new(200)
                .set_body_json(json!({ kind.clone(): listed(&kind) }));
        }
        let answer = match (verb.as_str(), path.rsplit('/').next()) {
            ("PUT", _) => {
                if body["customFields"].as_array().is_none_or(Vec::is_empty) {
                    return ResponseTemplate::new(422)
                        .set_body_json(json!({"statusCode": 422, "message": ["customFields"]}));
                }
                // As GHL answers: each field by its id, with its value.
                let fields: Vec<Value> = (body["customFields"].as_array().into_iter().flatten())
                    .enumerate()
                    .map(|(i, f)| json!({"id": format!("field-{i}"), "value": f["field_value"]}))
                    .collect();
                json!({"succeded": true, "contact": {"id": contact, "customFields": fields}})
            }
            (_, Some("tags")) => json!({"tags": body["tags"]}),
            (_, Some("notes")) if body["body"].is_string() => {
                json!({"note": {"id": "n", "body": body["body"], "contactId": contact}})
            }
            (_, Some("tasks")) if body["title"].is_string() && body["dueDate"].is_string() => {
                json!({"task": {"id": "t", "title": body["title"], "body": body["body"], "contactId": contact}})
            }
            _ => {
                return ResponseTemplate::new(422)
                    .set_body_json(json!({"statusCode": 422, "message": ["body"]}));
            }
        };
        self.0.held.writes.lock().expect("lock").push(Write {
            method: verb,
            path,
            body,
        });
        ResponseTemplate::new(if answer.get("succeded").is_some() {
            200
        } else {
            201
        })
        .insert_header("X-RateLimit-Remaining", "90")
        .insert_header("X-RateLimit-Interval-Milliseconds", "10000")
        .set_body_json(answer)
    }
}
