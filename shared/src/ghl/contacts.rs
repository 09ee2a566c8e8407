//! The Contacts API: every endpoint GHL lists for contacts, their tasks, notes,
//! appointments and tags, as typed async methods of [`GhlClient`]. Each call carries
//! the location's token and `Version: 2021-07-28`, waits out the location's rate
//! limit, and answers GHL's errors as [`GhlError`] (`Rejected` with GHL's message
//! for a `400` or `422`).

use futures_util::stream::{self, Stream, TryStreamExt};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::Contact;
use super::client::{GhlClient, id};
use super::tokens::TokenSource;
use crate::enrich::{GhlError, GhlReader};

/// A contact to create, update or upsert: the fields to set, others left alone.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactInput {
    /// Required to create or upsert; not sent on update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_of_birth: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dnd: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<Vec<CustomFieldInput>>,
    /// Any other field GHL accepts, sent as is.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A custom field's new value, by id or key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomFieldInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub field_value: Value,
}

/// A task of a contact.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub id: String,
    pub title: Option<String>,
    pub body: Option<String>,
    pub assigned_to: Option<String>,
    pub due_date: Option<String>,
    pub completed: Option<bool>,
    pub contact_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A task to create or update.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskInput {
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// ISO-8601.
    pub due_date: String,
    pub completed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
}

/// A note on a contact.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Note {
    pub id: String,
    pub body: Option<String>,
    pub user_id: Option<String>,
    pub date_added: Option<String>,
    pub contact_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A note to create or update.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NoteInput {
    pub body: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// An appointment of a contact (GHL calls them events).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Appointment {
    pub id: String,
    pub calendar_id: Option<String>,
    pub status: Option<String>,
    pub title: Option<String>,
    pub appointment_status: Option<String>,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What an upsert did.
#[derive(Debug, Clone, PartialEq)]
pub struct Upserted {
    pub created: bool,
    pub contact: Contact,
}

/// One page of a search.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct SearchPage {
    #[serde(default)]
    pub contacts: Vec<Contact>,
    #[serde(default)]
    pub total: Option<u64>,
}

/// A search: free text and GHL's filters (see GHL's search documentation).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchRequest {
    pub page: u32,
    pub page_limit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Value>,
}

#[derive(Deserialize)]
struct OneContact {
    contact: Contact,
}

#[derive(Deserialize)]
struct OneTask {
    task: Task,
}

#[derive(Deserialize)]
struct OneNote {
    note: Note,
}

#[derive(Deserialize)]
struct Tags {
    #[serde(default)]
    tags: Vec<String>,
}

/// A page of the deprecated list, with its cursor when GHL gives one.
#[derive(Deserialize)]
struct ListPage {
    #[serde(default)]
    contacts: Vec<Contact>,
    #[serde(default)]
    meta: Option<ListMeta>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListMeta {
    start_after_id: Option<String>,
    start_after: Option<i64>,
}

fn body(input: &impl Serialize) -> Result<Value, GhlError> {
    serde_json::to_value(input).map_err(|e| GhlError::Rejected {
        status: 0,
        message: e.to_string(),
    })
}

fn location_of(input: &ContactInput) -> Result<&str, GhlError> {
    input
        .location_id
        .as_deref()
        .ok_or_else(|| GhlError::Rejected {
            status: 0,
            message: "a contact needs its locationId".into(),
        })
}

impl<T: TokenSource> GhlClient<T> {
    /// `POST /contacts/`.
    pub async fn create_contact(&self, input: &ContactInput) -> Result<Contact, GhlError> {
        let location = location_of(input)?;
        let answer: OneContact = self
            .call(
                location,
                Method::POST,
                "/contacts/",
                &[],
                Some(&body(input)?),
            )
            .await?;
        Ok(answer.contact)
    }

    /// `PUT /contacts/{id}`.
    pub async fn update_contact(
        &self,
        location_id: &str,
        contact_id: &str,
        input: &ContactInput,
    ) -> Result<Contact, GhlError> {
        let mut input = input.clone();
        input.location_id = None;
        let path = format!("/contacts/{}", id(contact_id)?);
        let answer: OneContact = self
            .call(location_id, Method::PUT, &path, &[], Some(&body(&input)?))
            .await?;
        Ok(answer.contact)
    }

    /// `POST /contacts/upsert`: creates, or updates the contact the location's
    /// duplicate rules match.
    pub async fn upsert_contact(&self, input: &ContactInput) -> Result<Upserted, GhlError> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            new: bool,
            contact: Contact,
        }
        let location = location_of(input)?;
        let answer: Answer = self
            .call(
                location,
                Method::POST,
                "/contacts/upsert",
                &[],
                Some(&body(input)?),
            )
            .await?;
        Ok(Upserted {
            created: answer.new,
            contact: answer.contact,
        })
    }

    /// `DELETE /contacts/{id}`.
    pub async fn delete_contact(
        &self,
        location_id: &str,
        contact_id: &str,
    ) -> Result<(), GhlError> {
        let path = format!("/contacts/{}", id(contact_id)?);
        self.call::<Value>(location_id, Method::DELETE, &path, &[], None)
            .await
            .map(|_| ())
    }

    /// `POST /contacts/search`: one page.
    pub async fn search_contacts(
        &self,
        location_id: &str,
        search: &SearchRequest,
    ) -> Result<SearchPage, GhlError> {
        let mut request = body(search)?;
        request["locationId"] = json!(location_id);
        let page: Option<SearchPage> = self
            .call(
                location_id,
                Method::POST,
                "/contacts/search",
                &[],
                Some(&request),
            )
            .await?;
        Ok(page.unwrap_or_default())
    }

    /// `GET /contacts/search/duplicate`: the contact with this e-mail or phone.
    pub async fn find_duplicate(
        &self,
        location_id: &str,
        email: Option<&str>,
        phone: Option<&str>,
    ) -> Result<Option<Contact>, GhlError> {
        #[derive(Deserialize)]
        struct Answer {
            contact: Option<Contact>,
        }
        let mut query = vec![("locationId", location_id)];
        query.extend(email.map(|e| ("email", e)));
        query.extend(phone.map(|p| ("number", p)));
        let answer: Option<Answer> = self
            .call(
                location_id,
                Method::GET,
                "/contacts/search/duplicate",
                &query,
                None,
            )
            .await?;
        Ok(answer.and_then(|a| a.contact))
    }

    /// `GET /contacts/business/{businessId}`: one page.
    pub async fn contacts_by_business(
        &self,
        location_id: &str,
        business_id: &str,
        limit: u32,
        skip: u32,
    ) -> Result<Vec<Contact>, GhlError> {
        let path = format!("/contacts/business/{}", id(business_id)?);
        let (limit, skip) = (limit.to_string(), skip.to_string());
        let query = [
            ("locationId", location_id),
            ("limit", &limit),
            ("skip", &skip),
        ];
        let page: ListPage = self
            .call(location_id, Method::GET, &path, &query, None)
            .await?;
        Ok(page.contacts)
    }

    /// Every contact of the location through the deprecated `GET /contacts/`,
    /// page after page (`startAfterId`/`startAfter`), as a stream. Pages hold up to
    /// `page_size` (at most 100) contacts.
    pub fn list_contacts<'a>(
        &'a self,
        location_id: &'a str,
        query: Option<&'a str>,
        page_size: u32,
    ) -> impl Stream<Item = Result<Contact, GhlError>> + 'a {
        let limit = page_size.clamp(1, 100);
        let first: Option<(Option<String>, Option<i64>)> = Some((None, None));
        stream::try_unfold(first, move |cursor| async move {
            let Some((after_id, after)) = cursor else {
                return Ok(None);
            };
            let limit_text = limit.to_string();
            let after_text = after.map(|a| a.to_string());
            let mut params = vec![("locationId", location_id), ("limit", limit_text.as_str())];
            params.extend(query.map(|q| ("query", q)));
            params.extend(after_id.as_deref().map(|a| ("startAfterId", a)));
            params.extend(after_text.as_deref().map(|a| ("startAfter", a)));
            let page: ListPage = self
                .call(location_id, Method::GET, "/contacts/", &params, None)
                .await?;
            // GHL's cursor, or (its shape being unconfirmed) the last contact's.
            let next = match (&page.meta, page.contacts.last()) {
                _ if page.contacts.len() < limit as usize => None,
                (
                    Some(ListMeta {
                        start_after_id: Some(id),
                        start_after,
                    }),
                    _,
                ) => Some((Some(id.clone()), *start_after)),
                (_, Some(last)) => Some((
                    Some(last.id.clone()),
                    last.date_added
                        .as_deref()
                        .and_then(super::parse_timestamp)
                        .map(|t| t.timestamp_millis()),
                )),
                _ => None,
            };
            Ok(Some((
                stream::iter(page.contacts.into_iter().map(Ok)),
                next,
            )))
        })
        .try_flatten()
    }

    /// `GET /contacts/{id}/tasks`.
    pub async fn tasks(&self, location_id: &str, contact_id: &str) -> Result<Vec<Task>, GhlError> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            tasks: Vec<Task>,
        }
        let path = format!("/contacts/{}/tasks", id(contact_id)?);
        Ok(self.get::<Answer>(location_id, &path).await?.tasks)
    }

    /// `GET /contacts/{id}/tasks/{taskId}`.
    pub async fn task(
        &self,
        location_id: &str,
        contact_id: &str,
        task_id: &str,
    ) -> Result<Task, GhlError> {
        let path = format!("/contacts/{}/tasks/{}", id(contact_id)?, id(task_id)?);
        Ok(self.get::<OneTask>(location_id, &path).await?.task)
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
            .call(location_id, Method::POST, &path, &[], Some(&body(input)?))
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
            .call(location_id, Method::PUT, &path, &[], Some(&body(input)?))
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
            .call(
                location_id,
                Method::PUT,
                &path,
                &[],
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
        self.call::<Value>(location_id, Method::DELETE, &path, &[], None)
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
        Ok(self.get::<Answer>(location_id, &path).await?.notes)
    }

    /// `GET /contacts/{id}/notes/{noteId}`.
    pub async fn note(
        &self,
        location_id: &str,
        contact_id: &str,
        note_id: &str,
    ) -> Result<Note, GhlError> {
        let path = format!("/contacts/{}/notes/{}", id(contact_id)?, id(note_id)?);
        Ok(self.get::<OneNote>(location_id, &path).await?.note)
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
            .call(location_id, Method::POST, &path, &[], Some(&body(input)?))
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
            .call(location_id, Method::PUT, &path, &[], Some(&body(input)?))
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
        self.call::<Value>(location_id, Method::DELETE, &path, &[], None)
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
        Ok(self.get::<Answer>(location_id, &path).await?.events)
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
            .call(
                location_id,
                Method::POST,
                &path,
                &[],
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
            .call(
                location_id,
                Method::DELETE,
                &path,
                &[],
                Some(&json!({"tags": tags})),
            )
            .await?;
        Ok(answer.tags)
    }

    /// `GET /contacts/{id}`.
    pub async fn get_contact(
        &self,
        location_id: &str,
        contact_id: &str,
    ) -> Result<Contact, GhlError> {
        self.contact(location_id, contact_id).await
    }
}
