//! GHL and Meta in memory, behind the library's ports: for tests of the stages'
//! logic, with no HTTP in between (the HTTP stand-ins are in [`crate::stand_in`]).

use std::collections::HashMap;
use std::sync::Mutex;

use ghl_capi::capi::{Answer, EventRequest, EventsApi, TransportError};
use ghl_capi::ghl::{Contact, GhlError, GhlReader, Related};
use serde_json::{Value, json};

/// GHL as a map of contacts: records every read, and can be told to fail them all.
#[derive(Debug, Default)]
pub struct FakeGhl {
    contacts: HashMap<String, Contact>,
    reads: Mutex<Vec<String>>,
    fail: Option<GhlError>,
}

impl FakeGhl {
    /// GHL holding `contacts`.
    pub fn with(contacts: &[Contact]) -> Self {
        FakeGhl {
            contacts: contacts.iter().map(|c| (c.id.clone(), c.clone())).collect(),
            ..FakeGhl::default()
        }
    }

    /// GHL answering every read with `error`.
    pub fn failing(error: GhlError) -> Self {
        FakeGhl {
            fail: Some(error),
            ..FakeGhl::default()
        }
    }

    /// Every read so far, in order: `contact c1`, `notes c1`, …
    pub fn reads(&self) -> Vec<String> {
        self.reads.lock().expect("lock").clone()
    }

    fn read(&self, what: String) -> Result<(), GhlError> {
        self.reads.lock().expect("lock").push(what);
        self.fail.clone().map_or(Ok(()), Err)
    }
}

impl GhlReader for FakeGhl {
    async fn contact(&self, _location: &str, contact_id: &str) -> Result<Contact, GhlError> {
        self.read(format!("contact {contact_id}"))?;
        self.contacts
            .get(contact_id)
            .cloned()
            .ok_or(GhlError::NotFound)
    }

    /// Every list holds one note-like record.
    async fn related(
        &self,
        _location: &str,
        contact_id: &str,
        related: Related,
    ) -> Result<Value, GhlError> {
        self.read(format!("{} {contact_id}", related.segment()))?;
        Ok(json!([{"body": "Budget approved"}]))
    }
}

/// Meta in memory: refuses any request that holds an event named `Bad` (as Meta
/// refuses a whole batch for one invalid event), or gives one fixed answer; records
/// each request.
#[derive(Debug, Default)]
pub struct FakeMeta {
    requests: Mutex<Vec<(String, EventRequest)>>,
    answer: Option<Answer>,
}

impl FakeMeta {
    /// Meta answering every request with `status` and `body`.
    pub fn answering(status: u16, body: &str) -> Self {
        FakeMeta {
            answer: Some(Answer {
                status,
                body: body.to_owned(),
            }),
            ..FakeMeta::default()
        }
    }

    /// Each request's dataset and number of events, in order.
    pub fn requests(&self) -> Vec<(String, usize)> {
        let requests = self.requests.lock().expect("lock");
        requests
            .iter()
            .map(|(dataset, request)| (dataset.clone(), request.data.len()))
            .collect()
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
        self.requests
            .lock()
            .expect("lock")
            .push((dataset_id.to_owned(), request.clone()));
        if let Some(answer) = &self.answer {
            return Ok(answer.clone());
        }
        let answer = if request.data.iter().any(|e| e.event_name == "Bad") {
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
        Ok(answer)
    }
}
