//! GHL's contacts (and opportunities) as a local HTTP server holding a
//! location's records, which a test changes as GHL's users would: `POST /contacts/search` with the range
//! filter on `dateUpdated` and the sort reconciliation asks for (anything else in
//! the body is refused, as GHL refuses what it does not know), paged by `page`
//! and `pageLimit`; `GET /contacts/{id}`; and `GET /opportunities/search`, paged
//! by GHL's `startAfter`/`startAfterId` cursor. It keeps each search's body and
//! time, and can change a contact right after a given search, as a user editing
//! GHL while a listing runs. Given [`Limits`], it counts every request against the
//! location's window and day as GHL does, says what is left in GHL's headers, and
//! answers `429` once either is spent. Its answers can take a set time, as GHL's do.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

mod meter;
pub use meter::Limits;
use meter::{Meter, with_headers};

/// A change to make after the search of this number (1-based).
type Planned = (usize, String, Vec<String>);

#[derive(Debug, Default)]
struct Held {
    contacts: Vec<Value>,
    opportunities: Vec<Value>,
    searches: Vec<(Instant, Value)>,
    opportunity_searches: usize,
    planned: Vec<Planned>,
    /// Search as GHL might, if the second-hand documentation is wrong.
    quirk: Quirk,
    meter: Option<Meter>,
    /// Each contact read, by id.
    reads: Vec<String>,
    /// How long each answer takes, as GHL's take a while.
    latency: Duration,
}

/// A route's answers, counted against the location's limits.
struct Metered<R>(ContactsStandIn, R);

impl<R: Respond> Respond for Metered<R> {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let (counted, latency) = {
            let mut held = self.0.lock();
            (held.meter.as_mut().map(Meter::count), held.latency)
        };
        let answer = match counted {
            None => self.1.respond(request),
            Some((headers, true)) => {
                let refused = ResponseTemplate::new(429)
                    .set_body_json(json!({"statusCode": 429, "message": "Too many requests"}));
                with_headers(refused, headers)
            }
            Some((headers, false)) => with_headers(self.1.respond(request), headers),
        };
        answer.set_delay(latency)
    }
}

/// How the search departs from what reconciliation asks of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Quirk {
    #[default]
    None,
    /// Any filter is refused (`422`).
    RefusesFilters,
    /// The sort is ignored: newest contacts first.
    Unsorted,
    /// Down (`503`) from the search of this number on, as GHL in an outage.
    DownFrom(usize),
    /// The opportunity search down (`503`) from its request of this number on.
    OpportunitiesDownFrom(usize),
}

/// One location's contacts.
#[derive(Debug, Clone)]
pub struct ContactsStandIn {
    location: String,
    held: Arc<Mutex<Held>>,
}

/// An ISO-8601 time as GHL writes it.
pub fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl ContactsStandIn {
    pub fn new(location: &str) -> Self {
        ContactsStandIn {
            location: location.to_owned(),
            held: Arc::default(),
        }
    }

    /// Serves the search and single reads on `server` to a request bearing a token.
    pub async fn mount(&self, server: &MockServer) {
        Mock::given(method("POST"))
            .and(path("/contacts/search"))
            .and(header("Version", "2021-07-28"))
            .respond_with(Metered(self.clone(), Search(self.clone())))
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path_regex(r"^/contacts/[^/]+$"))
            .respond_with(Metered(self.clone(), Read(self.clone())))
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path("/opportunities/search"))
            .and(header("Version", "2021-07-28"))
            .respond_with(Metered(self.clone(), Opportunities(self.clone())))
            .mount(server)
            .await;
    }

    /// An opportunity of `contact` created at `at`, in `stage` with `status`.
    pub fn create_opportunity(
        &self,
        id: &str,
        contact: &str,
        (stage, status): (&str, &str),
        at: DateTime<Utc>,
    ) {
        let opportunity = json!({
            "id": id, "locationId": self.location, "contactId": contact, "name": format!("deal {id}"),
            "monetaryValue": 250, "pipelineId": "p1", "pipelineStageId": stage, "status": status,
            "createdAt": stamp(at), "updatedAt": stamp(at),
            "lastStatusChangeAt": stamp(at), "lastStageChangeAt": stamp(at),
            // As the search embeds it: the contact's few fields.
            "contact": {"id": contact, "name": format!("Person {contact}"),
                        "email": format!("{contact}@example.com"), "tags": []},
        });
        self.lock().opportunities.push(opportunity);
    }

    /// `id` moved to `stage` with `status` at `at`.
    pub fn move_opportunity(&self, id: &str, (stage, status): (&str, &str), at: DateTime<Utc>) {
        let mut held = self.lock();
        let o = held
            .opportunities
            .iter_mut()
            .find(|o| o["id"] == id)
            .expect("an opportunity of the stand-in");
        if o["status"] != status {
            o["lastStatusChangeAt"] = json!(stamp(at));
        }
        if o["pipelineStageId"] != stage {
            o["lastStageChangeAt"] = json!(stamp(at));
        }
        o["pipelineStageId"] = json!(stage);
        o["status"] = json!(status);
        o["updatedAt"] = json!(stamp(at));
    }

    /// The opportunity as GHL holds it now.
    pub fn opportunity(&self, id: &str) -> Value {
        let held = self.lock();
        let found = held.opportunities.iter().find(|o| o["id"] == id);
        found.cloned().expect("an opportunity of the stand-in")
    }

    /// A contact created at `at` with `tags` (changed then, too).
    pub fn create(&self, id: &str, tags: &[&str], at: DateTime<Utc>) {
        let contact = json!({
            "id": id, "locationId": self.location, "email": format!("{id}@example.com"),
            "tags": tags, "dateAdded": stamp(at), "dateUpdated": stamp(at),
        });
        self.lock().contacts.push(contact);
    }

    /// `id`'s tags set to `tags`, changed at `at`.
    pub fn retag(&self, id: &str, tags: &[&str], at: DateTime<Utc>) {
        retag(&mut self.lock(), id, tags, &stamp(at));
    }

    /// Right after search number `n`, `id`'s tags become `tags` (changed then).
    pub fn retag_after_search(&self, n: usize, id: &str, tags: &[&str]) {
        let tags = tags.iter().map(|t| (*t).to_owned()).collect();
        self.lock().planned.push((n, id.to_owned(), tags));
    }

    /// The search behaves as `quirk` says from now on.
    pub fn quirk(&self, quirk: Quirk) {
        self.lock().quirk = quirk;
    }

    /// From now on, requests count against `limits` (what is left of the day
    /// set anew each call; the window starts now).
    pub fn limit(&self, limits: Limits) {
        self.lock().meter = Some(Meter {
            limits,
            started: Instant::now(),
            in_window: 0,
            refused: 0,
        });
    }

    /// From now on, every answer takes `latency`.
    pub fn answer_after(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Requests answered `429` since the limits were set.
    pub fn refused(&self) -> u64 {
        self.lock().meter.as_ref().map_or(0, |m| m.refused)
    }

    /// Each contact read (`GET /contacts/{id}`) so far, by id, in order.
    pub fn reads(&self) -> Vec<String> {
        self.lock().reads.clone()
    }

    /// The contact as GHL holds it now.
    pub fn contact(&self, id: &str) -> Value {
        let held = self.lock();
        let found = held.contacts.iter().find(|c| c["id"] == id);
        found.cloned().expect("a contact of the stand-in")
    }

    /// Each search's time and body, in order.
    pub fn searches(&self) -> Vec<(Instant, Value)> {
        self.lock().searches.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn retag(held: &mut Held, id: &str, tags: &[impl AsRef<str>], at: &str) {
    let contact = held
        .contacts
        .iter_mut()
        .find(|c| c["id"] == id)
        .expect("a contact of the stand-in");
    contact["tags"] = tags.iter().map(|t| json!(t.as_ref())).collect();
    contact["dateUpdated"] = json!(at);
}

struct Search(ContactsStandIn);

impl Respond for Search {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return ResponseTemplate::new(400);
        };
        let mut held = self.0.lock();
        held.searches.push((Instant::now(), body.clone()));
        let n = held.searches.len();
        if let Quirk::DownFrom(from) = held.quirk
            && n >= from
        {
            return ResponseTemplate::new(503);
        }
        let answer = search(&held.contacts, &self.0.location, &body, held.quirk);
        let due: Vec<Planned> = held.planned.iter().filter(|p| p.0 == n).cloned().collect();
        for (_, id, tags) in due {
            retag(&mut held, &id, &tags, &stamp(Utc::now()));
        }
        answer
    }
}

/// The search's answer over `contacts`, or GHL's refusal of a body it does not take.
fn search(contacts: &[Value], location: &str, body: &Value, quirk: Quirk) -> ResponseTemplate {
    let refuse = |why: &str| {
        ResponseTemplate::new(422).set_body_json(json!({"statusCode": 422, "message": [why]}))
    };
    if body["locationId"] != location {
        return refuse("locationId");
    }
    let (Some(page), Some(limit)) = (body["page"].as_u64(), body["pageLimit"].as_u64()) else {
        return refuse("page and pageLimit");
    };
    let filters = body["filters"].as_array().map_or(0, Vec::len);
    if quirk == Quirk::RefusesFilters && filters > 0 {
        return refuse("filters");
    }
    // One range filter on a time field, `gte` and maybe `lte`; its field sorts.
    let mut range: Option<(String, String, Option<String>)> = None;
    for filter in body["filters"].as_array().into_iter().flatten() {
        let (field, operator, value) = (&filter["field"], &filter["operator"], &filter["value"]);
        let time_field = field == "dateUpdated" || field == "dateAdded";
        match (&value["gte"], &value["lte"]) {
            (Value::String(from), until) if time_field && operator == "range" => {
                let until = until.as_str().map(str::to_owned);
                range = Some((
                    field.as_str().unwrap_or_default().to_owned(),
                    from.clone(),
                    until,
                ));
            }
            _ => return refuse("filters"),
        }
    }
    let sort = match body["sort"].as_array().map(Vec::as_slice) {
        None => None,
        Some([one]) if one["direction"] == "asc" && one["field"].is_string() => {
            Some(one["field"].as_str().unwrap_or_default().to_owned())
        }
        Some(_) => return refuse("sort"),
    };
    let time = |c: &Value, field: &str| c[field].as_str().unwrap_or_default().to_owned();
    let mut kept: Vec<&Value> = contacts
        .iter()
        .filter(|c| {
            range.as_ref().is_none_or(|(field, from, until)| {
                let t = time(c, field);
                t >= *from && until.as_ref().is_none_or(|u| t <= *u)
            })
        })
        .collect();
    if quirk == Quirk::Unsorted {
        kept.reverse();
    } else if let Some(field) = &sort {
        kept.sort_by_key(|c| {
            (
                time(c, field),
                c["id"].as_str().unwrap_or_default().to_owned(),
            )
        });
    }
    let start = ((page.max(1) - 1) * limit) as usize;
    let items: Vec<&Value> = kept
        .iter()
        .skip(start)
        .take(limit as usize)
        .copied()
        .collect();
    ResponseTemplate::new(200).set_body_json(json!({"contacts": items, "total": kept.len()}))
}

struct Read(ContactsStandIn);

impl Respond for Read {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let id = request.url.path().trim_start_matches("/contacts/");
        let mut held = self.0.lock();
        held.reads.push(id.to_owned());
        match held.contacts.iter().find(|c| c["id"] == id) {
            Some(contact) => ResponseTemplate::new(200).set_body_json(json!({"contact": contact})),
            None => ResponseTemplate::new(404).set_body_json(json!({"statusCode": 404})),
        }
    }
}

struct Opportunities(ContactsStandIn);

impl Respond for Opportunities {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let query: std::collections::HashMap<String, String> =
            request.url.query_pairs().into_owned().collect();
        if query.get("location_id") != Some(&self.0.location) {
            return ResponseTemplate::new(422).set_body_json(json!({"message": ["location_id"]}));
        }
        let limit: usize = query
            .get("limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(20);
        let mut held = self.0.lock();
        held.opportunity_searches += 1;
        if let Quirk::OpportunitiesDownFrom(from) = held.quirk
            && held.opportunity_searches >= from
        {
            return ResponseTemplate::new(503);
        }
        // Ordered by creation (milliseconds) and id, as GHL's cursor reads.
        let order = |o: &Value| {
            let at = o["createdAt"]
                .as_str()
                .and_then(|t| t.parse::<DateTime<Utc>>().ok());
            (
                at.map_or(0, |t| t.timestamp_millis()),
                o["id"].as_str().unwrap_or_default().to_owned(),
            )
        };
        let mut all: Vec<&Value> = held.opportunities.iter().collect();
        all.sort_by_key(|o| order(o));
        let after = match (query.get("startAfter"), query.get("startAfterId")) {
            (Some(ms), Some(id)) => Some((ms.parse::<i64>().unwrap_or(0), id.clone())),
            _ => None,
        };
        let page: Vec<&Value> = all
            .into_iter()
            .filter(|o| after.as_ref().is_none_or(|a| order(o) > *a))
            .take(limit)
            .collect();
        let meta = match page.last() {
            Some(last) => {
                let (ms, id) = order(last);
                json!({"total": held.opportunities.len(), "startAfter": ms, "startAfterId": id})
            }
            None => json!({"total": held.opportunities.len()}),
        };
        ResponseTemplate::new(200).set_body_json(json!({"opportunities": page, "meta": meta}))
    }
}
