//! The pull side of the pipeline: GHL listed, and what it shows queued as jobs for
//! enrichment, beside the webhooks GHL pushes ([`crate::intake`]).
//!
//! - [`reconcile`]: the changes webhooks did not deliver, found by polling, on a
//!   schedule (the `reconcile` function, `serve`) and on request (`ghl-capi
//!   reconcile`); which locations a run takes, in what order;
//! - [`seed`]: a location's baseline of tags, when it is connected (`ghl-capi
//!   reconcile --seed`);
//! - [`backfill`]: a location's history sent through the pipeline (`ghl-capi
//!   backfill`);
//! - [`audience_sync`]: an audience's members listed from GHL, compared with the
//!   state store, and queued for the pipeline (`ghl-capi audience sync`);
//!   [`audience_mirror`]: its whole list replaced with them in one session
//!   (`audience sync --replace`), and the state store brought in step;
//! - [`listing`]: a location's contacts and opportunities through GHL's search,
//!   page by page, at a share of its budget: what each of the above lists with.

pub mod audience_mirror;
pub mod audience_sync;
pub mod backfill;
pub mod listing;
pub mod reconcile;
pub mod seed;
