//! The Contacts API: every endpoint GHL lists for contacts, their tasks, notes,
//! appointments and tags, as typed async methods of [`GhlClient`]. Each call carries
//! the location's token and `Version: 2021-07-28`, waits out the location's rate
//! limit, and answers GHL's errors as [`GhlError`] (`Rejected` with GHL's message
//! for a `400` or `422`).
//!
//! - this module: contacts (create, update, upsert, delete, search, list);
//! - [`records`]: a contact's tasks and notes ([`ContactRecord`]), appointments
//!   and tags;
//! - [`types`]: the inputs and records;
//! - [`writer`]: the write-back's writes, as the [`super::GhlWriter`] port.

mod records;
mod types;
mod writer;

use futures_util::stream::{self, Stream, TryStreamExt};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::budget::Use;
use super::client::GhlClient;
use super::reader::{GhlError, GhlReader};
use super::tokens::TokenSource;
use super::wire::id;
use super::{Contact, parse_timestamp};
pub use records::ContactRecord;
pub use types::{
    Appointment, ContactInput, CustomFieldInput, Note, NoteInput, SearchPage, SearchRequest, Task,
    TaskInput, Upserted,
};
use types::{ListMeta, ListPage, OneContact};

pub(super) fn body(input: &impl Serialize) -> Result<Value, GhlError> {
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
    /// One call of the Contacts API as a tool makes it (a person's command, a
    /// test's set-up: [`Use::Command`]), without a query.
    async fn tool<R: serde::de::DeserializeOwned>(
        &self,
        location_id: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<R, GhlError> {
        self.call((location_id, Use::Command), method, path, &[], body)
            .await
    }

    /// `POST /contacts/`.
    pub async fn create_contact(&self, input: &ContactInput) -> Result<Contact, GhlError> {
        let location = location_of(input)?;
        let answer: OneContact = self
            .tool(location, Method::POST, "/contacts/", Some(&body(input)?))
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
            .tool(location_id, Method::PUT, &path, Some(&body(&input)?))
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
            .tool(
                location,
                Method::POST,
                "/contacts/upsert",
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
        self.tool::<Value>(location_id, Method::DELETE, &path, None)
            .await
            .map(|_| ())
    }

    /// `POST /contacts/search`: one page, `used` for reconciliation or a backfill.
    pub async fn search_contacts(
        &self,
        (location_id, used): (&str, Use),
        search: &SearchRequest,
    ) -> Result<SearchPage, GhlError> {
        let mut request = body(search)?;
        request["locationId"] = json!(location_id);
        let page: Option<SearchPage> = self
            .call(
                (location_id, used),
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
                (location_id, Use::Command),
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
            .call(
                (location_id, Use::Command),
                Method::GET,
                &path,
                &query,
                None,
            )
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
                .call(
                    (location_id, Use::Command),
                    Method::GET,
                    "/contacts/",
                    &params,
                    None,
                )
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
                        .and_then(parse_timestamp)
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

    /// `GET /contacts/{id}`.
    pub async fn get_contact(
        &self,
        location_id: &str,
        contact_id: &str,
    ) -> Result<Contact, GhlError> {
        self.contact(location_id, contact_id).await
    }
}
