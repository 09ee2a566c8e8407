//! The shared core of ghl-capi: GoHighLevel webhooks in, Meta Conversions API events out.
//!
//! - [`ghl`]: the contact record and webhooks (typed payloads, signatures, replay window).
//! - [`conversion`]: conversions pushed by the user's own systems.
//! - [`mapping`]: the user's declarative mapping from GHL changes to Meta events.
//! - [`capi`]: Conversions API events, their validation and deterministic ids.
//! - [`normalize`]: normalisation and hashing of customer information.
//! - [`api`]: the intake API's routes, for API Gateway and for `ghl-capi serve`.
//! - [`intake`]: webhook intake: verify, validate, enqueue, answer in GHL's terms.
//! - [`conversion_intake`]: `POST /contacts/{contactId}/conversions`.
//! - [`enrich`]: from queued jobs to events for each pixel, fetching only what rules need.
//! - [`consumer`]: the enrichment and dispatch functions' batch logic.
//! - [`dispatch`]: delivering events to Meta, isolating invalid ones.
//! - [`redrive`]: reading and replaying dead letters.
//! - [`lease`]: self-freeing locks across processes.
//! - [`queue`]: the queue port and its in-memory adapter.
//! - [`secrets`]: the secret store port.
//! - [`verify`]: checking the GHL and Meta credentials against the mapping.
//! - [`telemetry`]: the metrics the pipeline records (EMF on Lambda).
//! - [`settings`]: configuration from environment variables, checked at cold start.
//! - [`backfill`]: contacts in, request bodies out (the `ghl-capi map` format).
pub mod api;
pub mod backfill;
pub mod capi;
pub mod consumer;
pub mod conversion;
pub mod conversion_intake;
pub mod dispatch;
pub mod enrich;
pub mod ghl;
mod http;
pub mod intake;
pub mod lease;
pub mod mapping;
pub mod normalize;
pub mod queue;
pub mod redrive;
pub mod secrets;
pub mod settings;
pub mod telemetry;
pub mod verify;
