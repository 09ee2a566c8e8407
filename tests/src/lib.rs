//! What the tests of every crate share, so none retypes it:
//!
//! - [`reference`](mod@reference): the reference material beside the repository (`../shared`);
//! - [`fixtures`]: the one fixture mapping, and GHL's webhook and contact bodies;
//! - [`fakes`]: GHL and Meta in memory, behind the library's ports;
//! - [`stand_in`]: Meta and GHL as local HTTP servers that check what we send;
//! - [`contacts_stand_in`]: GHL's contacts of a location, searched and changed
//!   as reconciliation meets them;
//! - [`audience_stand_in`]: Meta's Custom Audiences edge, keeping each audience's
//!   members;
//! - [`pipeline`]: enrichment over in-memory ports, for what queued jobs become;
//! - [`signing`]: a webhook signing key of the tests' own;
//! - [`soak`]: the outage soak's workload and accounting, for both modes;
//! - [`writes_stand_in`]: GHL taking the write-back's tags, fields, notes and
//!   tasks;
//! - [`moto`]: clients of the real AWS SDK pointed at the `moto_server` that
//!   `scripts/test.sh` starts.

pub mod audience_stand_in;
pub mod contacts_stand_in;
pub mod contracts;
pub mod failing_writes;
pub mod fakes;
pub mod fixtures;
pub mod moto;
pub mod oauth_stand_in;
pub mod pipeline;
pub mod reference;
pub mod signing;
pub mod soak;
pub mod stand_in;
pub mod writes_stand_in;

pub use reference::{read_reference, reference, reference_dir, reference_jsonl};

/// `name` made unique to this moment, so tests sharing one moto never collide.
pub fn unique(name: &str) -> String {
    format!(
        "{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos()
    )
}
