//! The ports: the small traits the stages reach the outside world through, each
//! beside its in-memory adapter. The real adapters live elsewhere: SQS, DynamoDB and
//! Secrets Manager in `ghl-capi-aws`, the SQLite store in `ghl-capi-local`.
//!
//! - [`queue`]: how stages hand work to each other.
//! - [`state`]: what enrichment remembers between jobs (tags seen, jobs done).
//! - [`lease`]: self-freeing locks across processes.
//! - [`secrets`]: tokens and keys, plain or versioned.
//! - [`mappings`]: a mapping's published versions.
//!
//! The in-memory adapters serve tests only: they are compiled under `cfg(test)` or
//! with the `test-util` feature.

pub mod lease;
pub mod mappings;
pub mod queue;
pub mod secrets;
pub mod state;

/// Any adapter's own error, kept as the source of a port's error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The JSON text a port carries for one of our own values: a job's body, a state
/// record, a secret. Every such value is made of strings, numbers, dates and
/// string-keyed maps, which always serialise; a type that one day does not is a
/// bug, and it stops here, loudly, rather than reach a queue or a record as an
/// empty text.
pub fn text<T: serde::Serialize + ?Sized>(value: &T) -> String {
    match serde_json::to_string(value) {
        Ok(text) => text,
        Err(e) => panic!("a {} does not serialise: {e}", std::any::type_name::<T>()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    #[test]
    fn our_values_are_their_json_and_one_that_is_not_stops_loudly() {
        assert_eq!(super::text(&["a", "b"]), r#"["a","b"]"#);
        let unserialisable = BTreeMap::from([((1, 2), "a map with keys JSON cannot have")]);
        let stopped = std::panic::catch_unwind(|| super::text(&unserialisable));
        let message = stopped.expect_err("it panics");
        let message = message.downcast_ref::<String>().expect("a message");
        assert!(message.contains("does not serialise"), "{message}");
    }
}
