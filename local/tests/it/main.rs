//! The local store with SQS's semantics, its audit journal and the status page:
//! one test binary.

mod journal;
mod status;
mod store;
