//! The write-back's writes ([`GhlWriter`]) over the Contacts API, leaving a
//! quarter of each location's window to real-time reads.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::{ContactInput, CustomFieldInput, NoteInput, TaskInput};
use crate::ghl::client::GhlClient;
use crate::ghl::reader::{GhlError, GhlWriter};
use crate::ghl::tokens::TokenSource;

/// Of GHL's 100 requests per 10 s and location, what writes leave to reads.
const KEPT_FOR_READS: u64 = 25;

impl<T: TokenSource> GhlWriter for GhlClient<T> {
    async fn add_tag(
        &self,
        location_id: &str,
        contact_id: &str,
        tag: &str,
    ) -> Result<(), GhlError> {
        self.add_tags(location_id, contact_id, &[tag.to_owned()])
            .await
            .map(|_| ())
    }

    async fn set_fields(
        &self,
        location_id: &str,
        contact_id: &str,
        fields: &[(String, Value)],
    ) -> Result<(), GhlError> {
        let custom_fields = fields
            .iter()
            .map(|(field, value)| {
                // A key names its object (`contact.…`); an id is one word.
                let keyed = field.contains('.');
                CustomFieldInput {
                    id: (!keyed).then(|| field.clone()),
                    key: keyed.then(|| field.clone()),
                    field_value: value.clone(),
                }
            })
            .collect();
        let input = ContactInput {
            custom_fields: Some(custom_fields),
            ..ContactInput::default()
        };
        self.update_contact(location_id, contact_id, &input)
            .await
            .map(|_| ())
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
        self.create_note(location_id, contact_id, &input)
            .await
            .map(|_| ())
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
        self.create_task(location_id, contact_id, &input)
            .await
            .map(|_| ())
    }

    fn reserved(&self, location_id: &str) -> Option<std::time::Duration> {
        self.limiter().reserved(location_id, KEPT_FOR_READS)
    }
}
