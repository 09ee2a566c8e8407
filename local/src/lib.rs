//! ghl-capi in one process: the intake API, enrichment and dispatch over an embedded
//! durable store, for a demo without AWS and for small shops that self-host.
//!
//! - [`store`]: the SQLite store: queues with SQS's semantics, and state;
//!   [`schema`]: its tables; [`files`]: its directory and files kept to their
//!   owner; [`mappings`]: the mapping file and its published versions.
//! - [`ports`]: the library's queue and state ports on it.
//! - [`outbox`]: dry-run delivery for pixels without a token.
//! - [`dev`]: the development key and the bundled sample webhook.
//! - [`journal`]: the audit journal `trace` and the status page read.
//! - [`serve`]: the server; [`workers`]: its consumers (and reconciliation);
//!   [`tasks`]: its tasks watched, a panic reported.
//! - [`admin`]: the operator's listener; [`status`]: its page's figures.
pub mod admin;
pub mod dev;
pub mod files;
pub mod journal;
pub mod mappings;
pub mod outbox;
pub mod ports;
mod schema;
pub mod serve;
pub mod status;
pub mod store;
mod tasks;
pub mod workers;
