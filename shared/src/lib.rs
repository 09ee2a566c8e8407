//! The shared core of ghl-capi: GoHighLevel webhooks in, Meta Conversions API events out.
//!
//! - [`normalize`]: normalisation and hashing of customer information.
pub mod normalize;
