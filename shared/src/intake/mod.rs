//! Intake: requests in, jobs queued, answers in the caller's terms. Nothing here
//! calls GHL or Meta; every answer comes once the job is durably queued (or says
//! why it was not).
//!
//! - [`routes`]: the API's routes, for any HTTP front (API Gateway, `serve`).
//! - [`webhook`]: `POST /webhooks/ghl`: verify, validate, enqueue.
//! - [`conversion`]: `POST /contacts/{contactId}/conversions`, and
//!   [`workflow`]: `POST /workflows/ghl`, GHL's workflow actions; both with the
//!   API [`keys`] scoped to locations, and what else they share ([`keyed`]).

pub mod conversion;
pub mod keyed;
pub mod keys;
pub mod routes;
pub mod webhook;
pub mod workflow;

pub use routes::{Api, Request, Response};

/// The largest body read: a larger one could never be queued (API Gateway takes
/// up to 10 MB; our queues' messages are smaller). A body this size is read and
/// verified, and queued if its job fits [`crate::jobs::MAX_JOB_BYTES`].
pub const MAX_BODY_BYTES: usize = crate::jobs::MAX_MESSAGE_BYTES;
