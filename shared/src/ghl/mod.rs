//! GoHighLevel's data: the contact record and the webhooks it sends.

pub mod client;
mod contact;
pub mod contacts;
mod de;
pub mod install;
mod limiter;
pub mod oauth;
pub mod tokens;
pub mod webhook;

pub use contact::{AttributionSource, Contact, CustomField, parse_timestamp};
