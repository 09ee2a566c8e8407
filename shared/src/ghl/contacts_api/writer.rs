//! The write-back's writes ([`GhlWriter`]) over the Contacts API, from what
//! real-time enrichment leaves of each location's budget. GHL's answer to a write
//! is not read beyond its status: a write it took is never tried again for an
//! answer this build cannot read.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use reqwest::Method;
use serde_json::json;

use super::records;
use super::{ContactInput, CustomFieldInput, Note, NoteInput, Task, TaskInput};
use crate::ghl::budget::Use;
use crate::ghl::client::GhlClient;
use crate::ghl::reader::{GhlError, GhlWriter};
use crate::ghl::tokens::TokenSource;
use crate::ghl::wire::id;

impl<T: TokenSource> GhlClient<T> {
    /// One write, its answer's body left unread.
    async fn write(
        &self,
        location_id: &str,
        method: Method,
        path: &str,
        input: &Value,
    ) -> Result<(), GhlError> {
        self.call::<serde::de::IgnoredAny>(
            (location_id, Use::WriteBack),
            method,
            path,
            &[],
            Some(input),
        )
        .await
        .map(|_| ())
    }
}

impl<T: TokenSource> GhlWriter for GhlClient<T> {
    async fn add_tag(
        &self,
        location_id: &str,
        contact_id: &str,
        tag: &str,
    ) -> Result<(), GhlError> {
        let path = format!("/contacts/{}/tags", id(contact_id)?);
        self.write(location_id, Method::POST, &path, &json!({"tags": [tag]}))
            .await
    }

    async fn set_fields(
        &self,
        location_id: &str,
        contact_id: &str,
        fields: &[(String, Value)],
    ) -> Result<(), GhlError> {
        let custom_fields = fields
            .iter()
            .map(|(field, value)| CustomFieldInput::by(field, value.clone()))
            .collect();
        let input = ContactInput {
            custom_fields: Some(custom_fields),
            ..ContactInput::default()
        };
        let path = format!("/contacts/{}", id(contact_id)?);
        self.write(location_id, Method::PUT, &path, &super::body(&input)?)
            .await
    }

    async fn add_note(
        &self,
        location_id: &str,
        contact_id: &str,
        body: &str,
    ) -> Result<(), GhlError> {
        let input = NoteInput {
            body: body.to_owned(),
            user_id: None,
        };
        let path = records::path::<Note>(contact_id, None)?;
        self.write(location_id, Method::POST, &path, &super::body(&input)?)
            .await
    }

    async fn add_task(
        &self,
        location_id: &str,
        contact_id: &str,
        (title, body): (&str, &str),
        due: DateTime<Utc>,
    ) -> Result<(), GhlError> {
        let input = TaskInput {
            title: title.to_owned(),
            body: Some(body.to_owned()),
            due_date: due.to_rfc3339_opts(SecondsFormat::Secs, true),
            completed: false,
            assigned_to: None,
        };
        let path = records::path::<Task>(contact_id, None)?;
        self.write(location_id, Method::POST, &path, &super::body(&input)?)
            .await
    }

    fn reserved(&self, location_id: &str) -> Option<std::time::Duration> {
        let wait = self.budget().wait(location_id, Use::WriteBack);
        (!wait.is_zero()).then_some(wait)
    }
}
