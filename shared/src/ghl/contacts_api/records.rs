//! A contact's tasks, notes, appointments and tags.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::body;
use super::types::{OneNote, OneTask, Tags};
use super::{Appointment, Note, NoteInput, Task, TaskInput};
use crate::ghl::client::GhlClient;
use crate::ghl::reader::GhlError;
use crate::ghl::tokens::TokenSource;
use crate::ghl::wire::id;

impl<T: TokenSource> GhlClient<T> {
    /// `GET /contacts/{id}/tasks`.
    pub async fn tasks(&self, location_id: &str, contact_id: &str) -> Result<Vec<Task>, GhlError> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            tasks: Vec<Task>,
        }
        let path = format!("/contacts/{}/tasks", id(contact_id)?);
        Ok(self
            .tool::<Answer>(location_id, Method::GET, &path, None)
            .await?
            .tasks)
    }

    /// `GET /contacts/{id}/tasks/{taskId}`.
    pub async fn task(
        &self,
        location_id: &str,
        contact_id: &str,
        task_id: &str,
    ) -> Result<Task, GhlError> {
        let path = format!("/contacts/{}/tasks/{}", id(contact_id)?, id(task_id)?);
        Ok(self
            .tool::<OneTask>(location_id, Method::GET, &path, None)
            .await?
            .task)
    }

    /// `POST /contacts/{id}/tasks`.
    pub async fn create_task(
        &self,
        location_id: &str,
        contact_id: &str,
        input: &TaskInput,
    ) -> Result<Task, GhlError> {
        let path = format!("/contacts/{}/tasks", id(contact_id)?);
        let answer: OneTask = self
            .tool(location_id, Method::POST, &path, Some(&body(input)?))
            .await?;
        Ok(answer.task)
    }

    /// `PUT /contacts/{id}/tasks/{taskId}`.
    pub async fn update_task(
        &self,
        location_id: &str,
        contact_id: &str,
        task_id: &str,
        input: &TaskInput,
    ) -> Result<Task, GhlError> {
        let path = format!("/contacts/{}/tasks/{}", id(contact_id)?, id(task_id)?);
        let answer: OneTask = self
            .tool(location_id, Method::PUT, &path, Some(&body(input)?))
            .await?;
        Ok(answer.task)
    }

    /// `PUT /contacts/{id}/tasks/{taskId}/completed`.
    pub async fn complete_task(
        &self,
        location_id: &str,
        contact_id: &str,
        task_id: &str,
        completed: bool,
    ) -> Result<Task, GhlError> {
        let path = format!(
            "/contacts/{}/tasks/{}/completed",
            id(contact_id)?,
            id(task_id)?
        );
        let answer: OneTask = self
            .tool(
                location_id,
                Method::PUT,
                &path,
                Some(&json!({"completed": completed})),
            )
            .await?;
        Ok(answer.task)
    }

    /// `DELETE /contacts/{id}/tasks/{taskId}`.
    pub async fn delete_task(
        &self,
        location_id: &str,
        contact_id: &str,
        task_id: &str,
    ) -> Result<(), GhlError> {
        let path = format!("/contacts/{}/tasks/{}", id(contact_id)?, id(task_id)?);
        self.tool::<Value>(location_id, Method::DELETE, &path, None)
            .await
            .map(|_| ())
    }

    /// `GET /contacts/{id}/notes`.
    pub async fn notes(&self, location_id: &str, contact_id: &str) -> Result<Vec<Note>, GhlError> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            notes: Vec<Note>,
        }
        let path = format!("/contacts/{}/notes", id(contact_id)?);
        Ok(self
            .tool::<Answer>(location_id, Method::GET, &path, None)
            .await?
            .notes)
    }

    /// `GET /contacts/{id}/notes/{noteId}`.
    pub async fn note(
        &self,
        location_id: &str,
        contact_id: &str,
        note_id: &str,
    ) -> Result<Note, GhlError> {
        let path = format!("/contacts/{}/notes/{}", id(contact_id)?, id(note_id)?);
        Ok(self
            .tool::<OneNote>(location_id, Method::GET, &path, None)
            .await?
            .note)
    }

    /// `POST /contacts/{id}/notes`.
    pub async fn create_note(
        &self,
        location_id: &str,
        contact_id: &str,
        input: &NoteInput,
    ) -> Result<Note, GhlError> {
        let path = format!("/contacts/{}/notes", id(contact_id)?);
        let answer: OneNote = self
            .tool(location_id, Method::POST, &path, Some(&body(input)?))
            .await?;
        Ok(answer.note)
    }

    /// `PUT /contacts/{id}/notes/{noteId}`.
    pub async fn update_note(
        &self,
        location_id: &str,
        contact_id: &str,
        note_id: &str,
        input: &NoteInput,
    ) -> Result<Note, GhlError> {
        let path = format!("/contacts/{}/notes/{}", id(contact_id)?, id(note_id)?);
        let answer: OneNote = self
            .tool(location_id, Method::PUT, &path, Some(&body(input)?))
            .await?;
        Ok(answer.note)
    }

    /// `DELETE /contacts/{id}/notes/{noteId}`.
    pub async fn delete_note(
        &self,
        location_id: &str,
        contact_id: &str,
        note_id: &str,
    ) -> Result<(), GhlError> {
        let path = format!("/contacts/{}/notes/{}", id(contact_id)?, id(note_id)?);
        self.tool::<Value>(location_id, Method::DELETE, &path, None)
            .await
            .map(|_| ())
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
        let path = format!("/contacts/{}/tags", id(contact_id)?);
        let answer: Tags = self
            .tool(
                location_id,
                Method::POST,
                &path,
                Some(&json!({"tags": tags})),
            )
            .await?;
        Ok(answer.tags)
    }

    /// `DELETE /contacts/{id}/tags`: the contact's tags afterwards.
    pub async fn remove_tags(
        &self,
        location_id: &str,
        contact_id: &str,
        tags: &[String],
    ) -> Result<Vec<String>, GhlError> {
        let path = format!("/contacts/{}/tags", id(contact_id)?);
        let answer: Tags = self
            .tool(
                location_id,
                Method::DELETE,
                &path,
                Some(&json!({"tags": tags})),
            )
            .await?;
        Ok(answer.tags)
    }
}
