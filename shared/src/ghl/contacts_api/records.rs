//! A contact's tasks, notes, appointments and tags.
//!
//! GHL keeps tasks and notes alike: listed, read, created, updated and deleted
//! by the same calls, each answer wrapped in the kind's key. So each call is one
//! method over [`ContactRecord`], the kind named where it is called
//! (`records::<Task>`).

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::body;
use super::types::Tags;
use super::{Appointment, Note, NoteInput, Task, TaskInput};
use crate::ghl::client::GhlClient;
use crate::ghl::reader::GhlError;
use crate::ghl::tokens::TokenSource;
use crate::ghl::wire::id;

/// A kind of record GHL keeps under a contact the way it keeps tasks and notes.
pub trait ContactRecord: DeserializeOwned {
    /// Its path under `/contacts/{id}/`, and the key GHL lists them under.
    const MANY: &'static str;
    /// The key GHL wraps one in.
    const ONE: &'static str;
    /// What creates or updates one.
    type Input: Serialize;
}

impl ContactRecord for Task {
    const MANY: &'static str = "tasks";
    const ONE: &'static str = "task";
    type Input = TaskInput;
}

impl ContactRecord for Note {
    const MANY: &'static str = "notes";
    const ONE: &'static str = "note";
    type Input = NoteInput;
}

/// `/contacts/{id}/tasks` (or `notes`), or one record's path below it.
pub(super) fn path<R: ContactRecord>(
    contact_id: &str,
    record_id: Option<&str>,
) -> Result<String, GhlError> {
    let records = format!("/contacts/{}/{}", id(contact_id)?, R::MANY);
    Ok(match record_id {
        Some(record_id) => format!("{records}/{}", id(record_id)?),
        None => records,
    })
}

/// What GHL wrapped in `key` (read as `null` when the key is missing).
fn unwrapped<V: DeserializeOwned>(
    mut answer: Map<String, Value>,
    key: &str,
) -> Result<V, GhlError> {
    serde_json::from_value(answer.remove(key).unwrap_or(Value::Null)).map_err(GhlError::unreadable)
}

impl<T: TokenSource> GhlClient<T> {
    /// `GET /contacts/{id}/tasks` (or `notes`): `records::<Task>(…)`.
    pub async fn records<R: ContactRecord>(
        &self,
        location_id: &str,
        contact_id: &str,
    ) -> Result<Vec<R>, GhlError> {
        let path = path::<R>(contact_id, None)?;
        let answer = self.tool(location_id, Method::GET, &path, None).await?;
        Ok(unwrapped::<Option<Vec<R>>>(answer, R::MANY)?.unwrap_or_default())
    }

    /// `GET /contacts/{id}/tasks/{taskId}` (or a note's).
    pub async fn record<R: ContactRecord>(
        &self,
        location_id: &str,
        (contact_id, record_id): (&str, &str),
    ) -> Result<R, GhlError> {
        let path = path::<R>(contact_id, Some(record_id))?;
        self.answered_with((location_id, Method::GET), &path, None)
            .await
    }

    /// `POST /contacts/{id}/tasks` (or `notes`).
    pub async fn create_record<R: ContactRecord>(
        &self,
        location_id: &str,
        contact_id: &str,
        input: &R::Input,
    ) -> Result<R, GhlError> {
        let path = path::<R>(contact_id, None)?;
        self.answered_with((location_id, Method::POST), &path, Some(&body(input)?))
            .await
    }

    /// `PUT /contacts/{id}/tasks/{taskId}` (or a note's).
    pub async fn update_record<R: ContactRecord>(
        &self,
        location_id: &str,
        (contact_id, record_id): (&str, &str),
        input: &R::Input,
    ) -> Result<R, GhlError> {
        let path = path::<R>(contact_id, Some(record_id))?;
        self.answered_with((location_id, Method::PUT), &path, Some(&body(input)?))
            .await
    }

    /// `DELETE /contacts/{id}/tasks/{taskId}` (or a note's).
    pub async fn delete_record<R: ContactRecord>(
        &self,
        location_id: &str,
        (contact_id, record_id): (&str, &str),
    ) -> Result<(), GhlError> {
        let path = path::<R>(contact_id, Some(record_id))?;
        self.tool::<Value>(location_id, Method::DELETE, &path, None)
            .await
            .map(|_| ())
    }

    /// `PUT /contacts/{id}/tasks/{taskId}/completed`.
    pub async fn complete_task(
        &self,
        location_id: &str,
        (contact_id, task_id): (&str, &str),
        completed: bool,
    ) -> Result<Task, GhlError> {
        let path = path::<Task>(contact_id, Some(task_id))? + "/completed";
        let input = json!({"completed": completed});
        self.answered_with((location_id, Method::PUT), &path, Some(&input))
            .await
    }

    /// One call answered with one record, wrapped in its kind's key.
    async fn answered_with<R: ContactRecord>(
        &self,
        (location_id, method): (&str, Method),
        path: &str,
        input: Option<&Value>,
    ) -> Result<R, GhlError> {
        let answer = self.tool(location_id, method, path, input).await?;
        unwrapped(answer, R::ONE)
    }

    /// `GET /contacts/{id}/appointments`.
    pub async fn appointments(
        &self,
        location_id: &str,
        contact_id: &str,
    ) -> Result<Vec<Appointment>, GhlError> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            events: Vec<Appointment>,
        }
        let path = format!("/contacts/{}/appointments", id(contact_id)?);
        Ok(self
            .tool::<Answer>(location_id, Method::GET, &path, None)
            .await?
            .events)
    }

    /// `POST /contacts/{id}/tags`: the contact's tags afterwards.
    pub async fn add_tags(
        &self,
        location_id: &str,
        contact_id: &str,
        tags: &[String],
    ) -> Result<Vec<String>, GhlError> {
        self.change_tags((location_id, Method::POST), contact_id, tags)
            .await
    }

    /// `DELETE /contacts/{id}/tags`: the contact's tags afterwards.
    pub async fn remove_tags(
        &self,
        location_id: &str,
        contact_id: &str,
        tags: &[String],
    ) -> Result<Vec<String>, GhlError> {
        self.change_tags((location_id, Method::DELETE), contact_id, tags)
            .await
    }

    /// A change of a contact's tags, answered with its tags afterwards.
    async fn change_tags(
        &self,
        (location_id, method): (&str, Method),
        contact_id: &str,
        tags: &[String],
    ) -> Result<Vec<String>, GhlError> {
        let path = format!("/contacts/{}/tags", id(contact_id)?);
        let input = json!({"tags": tags});
        let answer: Tags = self.tool(location_id, method, &path, Some(&input)).await?;
        Ok(answer.tags)
    }
}
