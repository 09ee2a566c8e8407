//! The local store with SQS's semantics: one test binary.

mod store;
