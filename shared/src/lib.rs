//! The shared core of ghl-capi: GoHighLevel changes in, Meta Conversions API events
//! out. Its wings, in the order data flows:
//!
//! - [`settings`]: configuration from the environment, checked at cold start, for
//!   every stage below.
//! - [`intake`]: the API's routes; webhooks verified and posted conversions checked,
//!   then queued as [`jobs`].
//! - [`pull`]: GHL listed, changes queued as jobs: reconciliation, seeding,
//!   backfill and audience sync, beside the webhooks GHL pushes.
//! - [`enrich`]: each job matched against the [`mapping`], GHL read only for what a
//!   firing rule needs, events queued for dispatch.
//! - [`dispatch`]: events delivered to Meta in batches, invalid ones isolated.
//! - [`ops`]: what a person runs beside the pipeline: `map`, dead-letter redrive, the
//!   credentials check, workflow snippets.
//!
//! Beneath the stages:
//!
//! - [`batch`]: what both consumers share: each record's outcome, retries with their
//!   reasons, dead letters; [`hold`]: holding work through a partner's outage
//!   (waits, circuit breakers, limits); [`quality`]: each pixel's match quality as
//!   the pipeline records it (identifier coverage by day and event name).
//! - [`jobs`]: the wire formats between stages (jobs, dead letters).
//! - [`mapping`]: the user's declarative mapping from GHL changes to Meta events.
//! - [`ghl`], [`capi`]: each partner's vocabulary and client: GHL's contacts,
//!   webhooks and tokens; Meta's events and answers.
//! - [`normalize`]: normalisation and hashing of customer information.
//! - [`ports`]: the queue, state, lease and secret ports, each beside its in-memory
//!   adapter.
//! - [`telemetry`]: the metrics the pipeline records; [`error`]: an error in words.
//!
//! Dependencies run one way, down this list (`scripts/check-layers.py` checks it):
//! `settings` and the stages → `batch`, `hold`, `quality` → `mapping` → `jobs` → partners →
//! `normalize`, `ports`.
pub mod batch;
pub mod capi;
pub mod dispatch;
pub mod enrich;
pub mod error;
pub mod ghl;
pub mod hold;
mod http;
pub mod intake;
pub mod jobs;
pub mod mapping;
pub mod normalize;
pub mod ops;
pub mod ports;
pub mod pull;
pub mod quality;
pub mod settings;
pub mod telemetry;
