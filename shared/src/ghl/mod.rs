//! GoHighLevel's vocabulary: the contact record and the webhooks it sends, and the
//! API that reads contacts, with the tokens it needs.
//!
//! - [`record`]: the contact record (`Contact`), as the API and webhooks carry it.
//! - [`webhook`]: typed webhooks, their signatures and the replay window.
//! - [`reader`]: the reads enrichment needs, as a port, and [`GhlError`].
//! - [`client`]: the API over HTTPS (the reader's adapter), each location's
//!   budget governed ([`budget`]), a contact read kept a short while ([`cache`]);
//!   [`contacts_api`]: every Contacts API endpoint on it;
//!   [`opportunities_api`]: the opportunities search; [`names`]: the names
//!   behind a location's ids (pipelines, stages, custom fields, calendars), read
//!   by [`names_api`].
//! - [`wire`]: what every call shares (version header, error bodies, tokens).
//! - [`tokens`]: where each location's token comes from, and its refresh.
//! - [`oauth`]: GHL's token endpoints; [`install`]: the marketplace app's install.
//! - [`workflow`]: calls of GHL's workflow actions (Webhook, Custom Webhook).

pub mod budget;
mod cache;
pub mod client;
pub mod contacts_api;
mod de;
pub mod install;
pub mod names;
pub mod names_api;
pub mod oauth;
pub mod opportunities_api;
pub mod reader;
mod record;
pub mod tokens;
pub mod webhook;
pub mod wire;
pub mod workflow;

pub use reader::{GhlError, GhlReader, GhlWriter, Related};
pub use record::{AttributionSource, Contact, CustomField, parse_timestamp};
