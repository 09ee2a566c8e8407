//! The shared core of ghl-capi: GoHighLevel webhooks in, Meta Conversions API events out.
//!
//! - [`ghl`]: the contact record and webhooks (typed payloads, signatures, replay window).
//! - [`capi`]: Conversions API events, their validation and deterministic ids.
//! - [`normalize`]: normalisation and hashing of customer information.
pub mod capi;
pub mod ghl;
pub mod normalize;
