//! Operations around the pipeline, run by a person through `ghl-capi`, or on a
//! schedule:
//!
//! - [`reconcile`]: the changes webhooks did not deliver, found by polling (on a
//!   schedule, and `ghl-capi reconcile`);
//! - [`audience_sync`]: an audience's members listed from GHL, compared with the
//!   state store, and queued for the pipeline (`ghl-capi audience sync`);
//! - [`backfill`]: a location's history sent through the pipeline
//!   (`ghl-capi backfill`);
//! - [`map`]: contacts in, request bodies out (the `ghl-capi map` engine, for
//!   previews and backfills);
//! - [`redrive`]: reading and replaying dead letters;
//! - [`seed`]: a location's baseline of tags (`ghl-capi reconcile --seed`);
//! - [`listing`]: a location's contacts through GHL's search, page by page;
//! - [`credentials`]: checking the GHL and Meta credentials against the mapping
//!   (`ghl-capi verify`);
//! - [`snippet`]: what to paste into a GHL workflow for a rule
//!   (`ghl-capi workflow snippet`).

pub mod audience_sync;
pub mod backfill;
pub mod credentials;
pub mod listing;
pub mod map;
pub mod reconcile;
pub mod redrive;
pub mod seed;
pub mod snippet;
