//! GHL and Meta in memory, behind the library's ports: for tests of the stages'
//! logic, with no HTTP in between (the HTTP stand-ins are in [`crate::stand_in`]).

use std::collections::HashMap;
use std::sync::Mutex;

use ghl_capi::capi::audience::UsersRequest;
use ghl_capi::capi::replace::ReplaceRequest;
use ghl_capi::capi::{Answer, AudiencesApi, EventRequest, EventsApi, TransportError};
use ghl_capi::ghl::names::LocationNames;
use ghl_capi::ghl::{Contact, GhlError, GhlReader, GhlWriter, Related};
use serde_json::{Value, json};

/// GHL as a map of contacts: records every read, and can be told to fail them all
/// (from the start, or from any moment on).
#[derive(Debug, Default)]
pub struct FakeGhl {
    contacts: HashMap<String, Contact>,
    reads: Mutex<Vec<String>>,
    fail: Mutex<Option<GhlError>>,
    /// Failures of one contact's reads only, by contact id.
    fail_contact: Mutex<HashMap<String, GhlError>>,
    /// Locations with no token or install here (every other one is connected).
    strangers: Vec<String>,
    /// Each location's names, as GHL would list them.
    names: Mutex<HashMap<String, LocationNames>>,
    /// The names' reads fail with this, the contacts' do not.
    names_failing: Mutex<Option<GhlError>>,
    /// Every write so far, in order: `tag c1 capi:Lead`, `note c1 <body>`, …
    writes: Mutex<Vec<String>>,
    /// Writes wait this long for GHL's budget ([`GhlWriter::reserved`]).
    reserved: Mutex<Option<std::time::Duration>>,
    /// Contact and list reads in flight now, and the most there were at once.
    at_once: Mutex<(usize, usize)>,
}

impl FakeGhl {
    /// GHL holding `contacts`.
    pub fn with(contacts: &[Contact]) -> Self {
        FakeGhl {
            contacts: contacts.iter().map(|c| (c.id.clone(), c.clone())).collect(),
            ..FakeGhl::default()
        }
    }

    /// GHL holding `contacts`, with no token or install for `locations`.
    pub fn with_strangers(contacts: &[Contact], locations: &[&str]) -> Self {
        FakeGhl {
            strangers: locations.iter().map(|l| (*l).to_owned()).collect(),
            ..FakeGhl::with(contacts)
        }
    }

    /// GHL answering every read with `error`.
    pub fn failing(error: GhlError) -> Self {
        FakeGhl {
            fail: Mutex::new(Some(error)),
            ..FakeGhl::default()
        }
    }

    /// From now on, every read fails with `error` (`None`: succeeds again).
    pub fn set_failing(&self, error: Option<GhlError>) {
        *self.fail.lock().expect("lock") = error;
    }

    /// From now on, reads of `contact_id` fail with `error` (`None`: succeed again).
    pub fn set_failing_for(&self, contact_id: &str, error: Option<GhlError>) {
        let mut failing = self.fail_contact.lock().expect("lock");
        match error {
            Some(error) => failing.insert(contact_id.to_owned(), error),
            None => failing.remove(contact_id),
        };
    }

    /// From now on, `location`'s names are `names`.
    pub fn set_names(&self, location: &str, names: LocationNames) {
        self.names
            .lock()
            .expect("lock")
            .insert(location.to_owned(), names);
    }

    /// From now on, reads of names fail with `error` (`None`: succeed again).
    pub fn set_names_failing(&self, error: Option<GhlError>) {
        *self.names_failing.lock().expect("lock") = error;
    }

    /// Every write so far, in order: `tag c1 capi:Lead`, `fields c1 key=value …`,
    /// `note c1 <body>`, `task c1 <title>: <body>`.
    pub fn writes(&self) -> Vec<String> {
        self.writes.lock().expect("lock").clone()
    }

    /// From now on, writes wait `wait` for GHL's budget (`None`: they go now).
    pub fn set_reserved(&self, wait: Option<std::time::Duration>) {
        *self.reserved.lock().expect("lock") = wait;
    }

    fn write(&self, what: String, contact_id: &str) -> Result<(), GhlError> {
        self.read(format!("write {contact_id}"), contact_id)?;
        self.writes.lock().expect("lock").push(what);
        Ok(())
    }

    /// The most contact and list reads that were in flight at once since the last
    /// call (1 when made one after another).
    pub fn most_at_once(&self) -> usize {
        std::mem::take(&mut self.at_once.lock().expect("lock").1)
    }

    /// A read in flight: it lets every other ready task run before it ends, so
    /// reads made side by side overlap.
    async fn in_flight(&self) {
        {
            let mut at_once = self.at_once.lock().expect("lock");
            at_once.0 += 1;
            at_once.1 = at_once.1.max(at_once.0);
        }
        tokio::task::yield_now().await;
        self.at_once.lock().expect("lock").0 -= 1;
    }

    /// Every read so far, in order: `contact c1`, `notes c1`, …
    pub fn reads(&self) -> Vec<String> {
        self.reads.lock().expect("lock").clone()
    }

    fn read(&self, what: String, contact_id: &str) -> Result<(), GhlError> {
        self.reads.lock().expect("lock").push(what);
        let failure = self.fail.lock().expect("lock").clone().or_else(|| {
            self.fail_contact
                .lock()
                .expect("lock")
                .get(contact_id)
                .cloned()
        });
        failure.map_or(Ok(()), Err)
    }
}

impl GhlReader for FakeGhl {
    async fn names(&self, location: &str) -> Result<LocationNames, GhlError> {
        self.read(format!("names {location}"), "")?;
        if let Some(error) = self.names_failing.lock().expect("lock").clone() {
            return Err(error);
        }
        let names = self.names.lock().expect("lock").get(location).cloned();
        Ok(names.unwrap_or_default())
    }

    async fn connected(&self, location_id: &str) -> Result<bool, GhlError> {
        Ok(!self.strangers.iter().any(|l| l == location_id))
    }

    async fn contact(&self, _location: &str, contact_id: &str) -> Result<Contact, GhlError> {
        self.in_flight().await;
        self.read(format!("contact {contact_id}"), contact_id)?;
        self.contacts
            .get(contact_id)
            .cloned()
            .ok_or(GhlError::NotFound)
    }

    /// Every list holds one note-like record, and the notes and tasks written.
    async fn related(
        &self,
        _location: &str,
        contact_id: &str,
        related: Related,
    ) -> Result<Value, GhlError> {
        self.in_flight().await;
        self.read(format!("{} {contact_id}", related.segment()), contact_id)?;
        let written = format!("{} {contact_id} ", &related.segment()[..4]);
        let mut list = vec![json!({"body": "Budget approved"})];
        for write in self.writes() {
            if let Some(body) = write.strip_prefix(&written) {
                list.push(json!({"body": body}));
            }
        }
        Ok(Value::Array(list))
    }
}

impl GhlWriter for FakeGhl {
    async fn add_tag(&self, _location: &str, contact_id: &str, tag: &str) -> Result<(), GhlError> {
        self.write(format!("tag {contact_id} {tag}"), contact_id)
    }

    async fn set_fields(
        &self,
        _location: &str,
        contact_id: &str,
        fields: &[(String, Value)],
    ) -> Result<(), GhlError> {
        let set: Vec<String> = fields.iter().map(|(f, v)| format!("{f}={v}")).collect();
        self.write(format!("fields {contact_id} {}", set.join(" ")), contact_id)
    }

    async fn add_note(
        &self,
        _location: &str,
        contact_id: &str,
        body: &str,
    ) -> Result<(), GhlError> {
        self.write(format!("note {contact_id} {body}"), contact_id)
    }

    async fn add_task(
        &self,
        _location: &str,
        contact_id: &str,
        (title, body): (&str, &str),
        _due: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), GhlError> {
        self.write(format!("task {contact_id} {title}: {body}"), contact_id)
    }

    fn reserved(&self, _location: &str) -> Option<std::time::Duration> {
        *self.reserved.lock().expect("lock")
    }
}

/// Meta in memory: refuses any request that holds an event named `Bad` (as Meta
/// refuses a whole batch for one invalid event), or gives one fixed answer; records
/// each request.
#[derive(Debug, Default)]
pub struct FakeMeta {
    /// Each request, with the status it was answered.
    requests: Mutex<Vec<(String, EventRequest, u16)>>,
    /// Audience requests: the audience id and the request.
    audience_requests: Mutex<Vec<(String, UsersRequest)>>,
    /// Replace batches: the audience id and the batch.
    replaces: Mutex<Vec<(String, ReplaceRequest)>>,
    answer: Mutex<Option<Answer>>,
    /// Requests of more events than this are answered a bare `413`.
    most: Mutex<Option<usize>>,
}

impl FakeMeta {
    /// The fixed answer, else `200` with `healthy`.
    fn answer_or(&self, healthy: Value) -> Answer {
        let fixed = self.answer.lock().expect("lock").clone();
        fixed.unwrap_or_else(|| Answer {
            status: 200,
            body: healthy.to_string(),
        })
    }

    /// Each replace batch it took: the audience id and the batch.
    pub fn replaces(&self) -> Vec<(String, ReplaceRequest)> {
        self.replaces.lock().expect("lock").clone()
    }

    /// Meta answering every request with `status` and `body`.
    pub fn answering(status: u16, body: &str) -> Self {
        let meta = FakeMeta::default();
        meta.set_answer(Some((status, body)));
        meta
    }

    /// From now on, every request is answered `status` and `body` (`None`: as a
    /// healthy Meta would).
    pub fn set_answer(&self, answer: Option<(u16, &str)>) {
        *self.answer.lock().expect("lock") = answer.map(|(status, body)| Answer {
            status,
            body: body.to_owned(),
        });
    }

    /// From now on, a request of more than `events` events is answered a bare
    /// `413` (too large), as a proxy in front of Meta would.
    pub fn too_large_over(&self, events: usize) {
        *self.most.lock().expect("lock") = Some(events);
    }

    /// Each request's dataset and number of events, in order.
    pub fn requests(&self) -> Vec<(String, usize)> {
        let requests = self.requests.lock().expect("lock");
        requests
            .iter()
            .map(|(dataset, request, _)| (dataset.clone(), request.data.len()))
            .collect()
    }

    /// The event id of every event of every request answered `2xx`, in order
    /// (an id twice is an event delivered twice).
    pub fn delivered(&self) -> Vec<String> {
        let requests = self.requests.lock().expect("lock");
        requests
            .iter()
            .filter(|(_, _, status)| (200..300).contains(status))
            .flat_map(|(_, request, _)| &request.data)
            .map(|event| event.event_id.clone().unwrap_or_default())
            .collect()
    }

    /// Every request answered `2xx`, with its dataset, in order.
    pub fn delivered_requests(&self) -> Vec<(String, EventRequest)> {
        let requests = self.requests.lock().expect("lock");
        requests
            .iter()
            .filter(|(_, _, status)| (200..300).contains(status))
            .map(|(dataset, request, _)| (dataset.clone(), request.clone()))
            .collect()
    }

    /// The name and id of every event of every request answered `2xx`, in order.
    pub fn delivered_named(&self) -> Vec<(String, String)> {
        let requests = self.requests.lock().expect("lock");
        requests
            .iter()
            .filter(|(_, _, status)| (200..300).contains(status))
            .flat_map(|(_, request, _)| &request.data)
            .map(|e| (e.event_name.clone(), e.event_id.clone().unwrap_or_default()))
            .collect()
    }

    /// Each audience request, in order.
    pub fn audience_requests(&self) -> Vec<(String, UsersRequest)> {
        self.audience_requests.lock().expect("lock").clone()
    }

    /// How many events each request held.
    pub fn sizes(&self) -> Vec<usize> {
        self.requests().into_iter().map(|(_, n)| n).collect()
    }
}

impl EventsApi for FakeMeta {
    async fn post(
        &self,
        dataset_id: &str,
        request: &EventRequest,
    ) -> Result<Answer, TransportError> {
        let fixed = self.answer.lock().expect("lock").clone();
        let most = *self.most.lock().expect("lock");
        let answer = if let Some(answer) = fixed {
            answer
        } else if most.is_some_and(|most| request.data.len() > most) {
            Answer {
                status: 413,
                body: "<html>Request Entity Too Large</html>".into(),
            }
        } else if request.data.iter().any(|e| e.event_name == "Bad") {
            Answer {
                status: 400,
                body: json!({"error": {"code": 100, "error_subcode": 2_804_009,
                    "message": "Invalid parameter", "error_user_msg": "Purchase needs a value"}})
                .to_string(),
            }
        } else {
            Answer {
                status: 200,
                body: json!({"events_received": request.data.len()}).to_string(),
            }
        };
        self.requests.lock().expect("lock").push((
            dataset_id.to_owned(),
            request.clone(),
            answer.status,
        ));
        Ok(answer)
    }
}

/// Audiences answer as the events endpoint was told to (`set_answer`), else as a
/// healthy Meta would: every row received.
impl AudiencesApi for FakeMeta {
    async fn audience(&self, audience_id: &str) -> Result<Answer, TransportError> {
        let fixed = self.answer.lock().expect("lock").clone();
        Ok(fixed.unwrap_or_else(|| Answer {
            status: 200,
            body: json!({"id": audience_id, "name": audience_id,
                "operation_status": {"code": 200, "description": "Normal"}})
            .to_string(),
        }))
    }

    async fn sessions(&self, _: &str) -> Result<Answer, TransportError> {
        // Every session it took is over at once.
        let replaces = self.replaces.lock().expect("lock");
        let ids: Vec<String> = replaces
            .iter()
            .map(|(_, r)| r.session.session_id.to_string())
            .collect();
        let data: Vec<Value> = ids
            .iter()
            .map(|id| json!({"session_id": id, "stage": "finished", "progress": 100}))
            .collect();
        Ok(Answer {
            status: 200,
            body: json!({ "data": data }).to_string(),
        })
    }

    async fn users_replace(
        &self,
        audience_id: &str,
        request: &ReplaceRequest,
    ) -> Result<Answer, TransportError> {
        self.replaces
            .lock()
            .expect("lock")
            .push((audience_id.to_owned(), request.clone()));
        Ok(
            self.answer_or(json!({"session_id": request.session.session_id,
            "num_received": request.rows.len(), "num_invalid_entries": 0})),
        )
    }

    async fn users(
        &self,
        audience_id: &str,
        request: &UsersRequest,
    ) -> Result<Answer, TransportError> {
        self.audience_requests
            .lock()
            .expect("lock")
            .push((audience_id.to_owned(), request.clone()));
        Ok(self.answer_or(json!({"audience_id": audience_id,
            "num_received": request.rows.len(), "num_invalid_entries": 0})))
    }
}
