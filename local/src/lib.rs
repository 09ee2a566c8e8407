//! ghl-capi in one process: the intake API, enrichment and dispatch over an embedded
//! durable store, for a demo without AWS and for small shops that self-host.
//!
//! - [`store`]: the SQLite store: queues with SQS's semantics, and state.
//! - [`ports`]: the library's queue and state ports on it.
//! - [`outbox`]: dry-run delivery for pixels without a token.
//! - [`dev`]: the development key and the bundled sample webhook.
//! - [`serve`]: the server; [`workers`]: its two consumers.
pub mod dev;
pub mod outbox;
pub mod ports;
pub mod serve;
pub mod store;
pub mod workers;
