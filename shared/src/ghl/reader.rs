//! GHL's side of enrichment, as a port: the reads a job may need ([`GhlReader`]),
//! the related records it can ask for ([`Related`]), and what can go wrong
//! ([`GhlError`]). The Contacts API client is the real adapter.

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;

use super::Contact;
use super::budget::Use;
use super::webhook::FieldError;

/// The cause of an error that is not GHL's answer (a transport failure, an
/// unreadable body, a token store that failed). Shared, so a read fetched once per
/// batch can hand the same error to every job that asked for it.
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// Why GHL could not give what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GhlError {
    #[error("GHL has no such record")]
    NotFound,
    #[error("GHL rate limit reached; retry in {retry_after_ms} ms")]
    RateLimited { retry_after_ms: u64 },
    /// Not sent: the location's GHL budget is kept for real-time enrichment, or
    /// enrichment has spent its share of it ([`super::budget`]).
    #[error("{}", super::budget::reserved(*for_use, *retry_after_ms))]
    Reserved { for_use: Use, retry_after_ms: u64 },
    #[error("GHL refused the token")]
    Unauthorized,
    /// No token is stored for it: nothing can be read until one is.
    #[error("no GHL token is stored for {what}")]
    NoToken { what: String },
    #[error("GHL refused the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// The token works, but may not do this (a scope the app or token lacks).
    #[error(
        "GHL forbids this with the location's token ({status}): {message}; the app or token needs the scope for it"
    )]
    Forbidden { status: u16, message: String },
    /// GHL refused the marketplace app's own credentials: no location is at fault.
    #[error("GHL refused the app's credentials: {message}; fix the app secret")]
    AppRefused { message: String },
    /// GHL could not be reached or answered with a server error, or a token could
    /// not be read or refreshed: worth another try.
    #[error("GHL is unavailable ({context}): {source}")]
    Unavailable {
        context: &'static str,
        #[source]
        source: Cause,
    },
}

impl GhlError {
    /// An [`GhlError::Unavailable`] with what was being done and why it failed.
    pub fn unavailable(
        context: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        GhlError::Unavailable {
            context,
            source: Arc::from(source.into()),
        }
    }

    /// GHL answered, but with a body this build cannot read as the call's answer:
    /// serde's words without the value they quote (a contact's e-mail or phone; this
    /// error is logged).
    pub(crate) fn unreadable(source: serde_json::Error) -> Self {
        Self::unavailable("unreadable answer", FieldError::of("", &source))
    }

    /// A stable name for metrics and logs ([`code`]).
    pub fn code(&self) -> &'static str {
        match self {
            GhlError::NotFound => code::NOT_FOUND,
            GhlError::RateLimited { .. } => code::RATE_LIMITED,
            GhlError::Reserved { .. } => code::BUDGET_RESERVED,
            GhlError::Unauthorized => code::UNAUTHORIZED,
            GhlError::NoToken { .. } => code::NO_TOKEN,
            GhlError::Rejected { .. } => code::REJECTED,
            GhlError::Forbidden { .. } => code::FORBIDDEN,
            GhlError::AppRefused { .. } => code::APP_REFUSED,
            GhlError::Unavailable { .. } => code::UNAVAILABLE,
        }
    }
}

/// The codes of [`GhlError`]s: metric dimensions, and the causes held work keeps.
pub mod code {
    pub const NOT_FOUND: &str = "ghl_not_found";
    pub const RATE_LIMITED: &str = "ghl_rate_limited";
    pub const BUDGET_RESERVED: &str = "ghl_budget_reserved";
    pub const UNAUTHORIZED: &str = "ghl_unauthorized";
    pub const NO_TOKEN: &str = "ghl_no_token";
    pub const REJECTED: &str = "ghl_rejected";
    pub const FORBIDDEN: &str = "ghl_forbidden";
    pub const APP_REFUSED: &str = "ghl_app_refused";
    pub const UNAVAILABLE: &str = "ghl_unavailable";
}

/// Errors compare by what they say: an unavailable GHL by its context and cause
/// in words.
impl PartialEq for GhlError {
    fn eq(&self, other: &Self) -> bool {
        use GhlError as E;
        match (self, other) {
            (E::NotFound, E::NotFound) | (E::Unauthorized, E::Unauthorized) => true,
            (E::RateLimited { retry_after_ms: a }, E::RateLimited { retry_after_ms: b }) => a == b,
            (
                E::Reserved {
                    for_use,
                    retry_after_ms,
                },
                E::Reserved {
                    for_use: u,
                    retry_after_ms: r,
                },
            ) => for_use == u && retry_after_ms == r,
            (E::NoToken { what }, E::NoToken { what: w }) => what == w,
            (
                E::Rejected { status, message },
                E::Rejected {
                    status: s,
                    message: m,
                },
            )
            | (
                E::Forbidden { status, message },
                E::Forbidden {
                    status: s,
                    message: m,
                },
            ) => status == s && message == m,
            (E::AppRefused { message }, E::AppRefused { message: m }) => message == m,
            (
                E::Unavailable { context, source },
                E::Unavailable {
                    context: c,
                    source: s,
                },
            ) => context == c && source.to_string() == s.to_string(),
            _ => false,
        }
    }
}

/// A contact's related records, as GHL lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Related {
    Notes,
    Tasks,
    Appointments,
}

impl Related {
    /// GHL's path segment for the list (`/contacts/{id}/{segment}`).
    pub fn segment(self) -> &'static str {
        match self {
            Related::Notes => "notes",
            Related::Tasks => "tasks",
            Related::Appointments => "appointments",
        }
    }

    /// The key GHL wraps the list under: appointments come as `events`.
    pub fn key(self) -> &'static str {
        match self {
            Related::Appointments => "events",
            other => other.segment(),
        }
    }
}

/// The GHL reads enrichment needs.
pub trait GhlReader: Send + Sync {
    /// `GET /contacts/{id}`.
    fn contact(
        &self,
        location_id: &str,
        contact_id: &str,
    ) -> impl Future<Output = Result<Contact, GhlError>> + Send;
    /// The contact's notes, tasks or appointments, as GHL lists them.
    fn related(
        &self,
        location_id: &str,
        contact_id: &str,
        related: Related,
    ) -> impl Future<Output = Result<Value, GhlError>> + Send;
    /// The names behind the location's ids: its pipelines and stages, custom
    /// fields and calendars. A reader that knows none has none.
    fn names(
        &self,
        location_id: &str,
    ) -> impl Future<Output = Result<super::names::LocationNames, GhlError>> + Send {
        let _ = location_id;
        async { Ok(super::names::LocationNames::default()) }
    }
    /// A webhook received at `received` told of a change to the contact: a read of
    /// it kept for later jobs, made before that, is stale. Readers that keep none
    /// have nothing to drop.
    fn forget(&self, location_id: &str, contact_id: &str, received: chrono::DateTime<chrono::Utc>) {
        let _ = (location_id, contact_id, received);
    }
    /// Whether the location is connected here (a token, or an install): only a
    /// connected location's webhooks reach pixels and audiences kept for "all
    /// locations".
    fn connected(&self, location_id: &str) -> impl Future<Output = Result<bool, GhlError>> + Send;
    /// The app was installed on a location of a company (an agency install reaching
    /// a new location): the location's token can be minted from the company's.
    /// Readers without tokens of their own have nothing to record.
    fn installed(
        &self,
        location_id: &str,
        company_id: &str,
    ) -> impl Future<Output = Result<(), GhlError>> + Send {
        let _ = (location_id, company_id);
        async { Ok(()) }
    }
    /// The app was uninstalled from a location or a company (GHL sent it at
    /// `sent_at`): its tokens are retired, unless installed since. Readers without
    /// tokens of their own have nothing to retire.
    fn uninstalled(
        &self,
        location_id: Option<&str>,
        company_id: Option<&str>,
        sent_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> impl Future<Output = Result<(), GhlError>> + Send {
        let _ = (location_id, company_id, sent_at);
        async { Ok(()) }
    }
}

/// The GHL writes the write-back makes into a contact (`contacts.write`).
pub trait GhlWriter: Send + Sync {
    /// `POST /contacts/{id}/tags`: adds `tag` (GHL keeps a tag once).
    fn add_tag(
        &self,
        location_id: &str,
        contact_id: &str,
        tag: &str,
    ) -> impl Future<Output = Result<(), GhlError>> + Send;
    /// `PUT /contacts/{id}`: sets custom fields, each by key (`contact.…`) or id.
    fn set_fields(
        &self,
        location_id: &str,
        contact_id: &str,
        fields: &[(String, Value)],
    ) -> impl Future<Output = Result<(), GhlError>> + Send;
    /// `POST /contacts/{id}/notes`.
    fn add_note(
        &self,
        location_id: &str,
        contact_id: &str,
        body: &str,
    ) -> impl Future<Output = Result<(), GhlError>> + Send;
    /// `POST /contacts/{id}/tasks`: its title and body, open, due at `due`.
    fn add_task(
        &self,
        location_id: &str,
        contact_id: &str,
        task: (&str, &str),
        due: chrono::DateTime<chrono::Utc>,
    ) -> impl Future<Output = Result<(), GhlError>> + Send;
    /// How long a write for `location_id` waits so real-time reads keep the
    /// share of GHL's window they need; `None`: it may go now.
    fn reserved(&self, location_id: &str) -> Option<std::time::Duration> {
        let _ = location_id;
        None
    }
}
