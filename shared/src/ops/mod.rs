//! What a person runs beside the pipeline, through `ghl-capi`:
//!
//! - [`map`]: contacts in, request bodies out (the `ghl-capi map` engine, for
//!   previews and backfills);
//! - [`redrive`]: reading and replaying dead letters;
//! - [`credentials`]: checking the GHL and Meta credentials against the mapping,
//!   and each location's catching up (`ghl-capi verify`); [`quality`]: each
//!   pixel's match quality, ours and Meta's (the same);
//! - [`snippet`]: what to paste into a GHL workflow for a rule
//!   (`ghl-capi workflow snippet`);
//! - [`init`]: a mapping from a marketer's answers (`ghl-capi mapping init`).

pub mod credentials;
pub mod init;
pub mod map;
pub mod quality;
pub mod redrive;
pub mod snippet;
