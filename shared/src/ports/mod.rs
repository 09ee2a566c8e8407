//! The ports: the small traits the stages reach the outside world through, each
//! beside its in-memory adapter. The real adapters live elsewhere: SQS, DynamoDB and
//! Secrets Manager in `ghl-capi-aws`, the SQLite store in `ghl-capi-local`.
//!
//! - [`queue`]: how stages hand work to each other.
//! - [`state`]: what enrichment remembers between jobs (tags seen, jobs done).
//! - [`lease`]: self-freeing locks across processes.
//! - [`secrets`]: tokens and keys, plain or versioned.
//!
//! The in-memory adapters serve tests only: they are compiled under `cfg(test)` or
//! with the `test-util` feature.

pub mod lease;
pub mod queue;
pub mod secrets;
pub mod state;

/// Any adapter's own error, kept as the source of a port's error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
