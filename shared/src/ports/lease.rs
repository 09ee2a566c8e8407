//! Leases: a lock that frees itself. One holder at a time per name, across
//! processes (a conditional write in DynamoDB on AWS); a holder that dies releases
//! it by letting the lease run out, so a crash never blocks everyone for good.

use std::future::Future;
use std::time::Duration;

use super::BoxError;

/// A lease store failure.
#[derive(Debug, thiserror::Error)]
#[error("lease store failed: {source}")]
pub struct LeaseError {
    #[source]
    pub source: BoxError,
}

impl LeaseError {
    /// Wraps an adapter's error.
    pub fn new(source: impl Into<BoxError>) -> Self {
        LeaseError {
            source: source.into(),
        }
    }
}

/// Where leases are kept.
pub trait Lease: Send + Sync {
    /// Takes the lease `name` for `owner` for `hold`, if nobody else holds it: the
    /// holder itself extends it this way (a long task renews its lease as it works).
    fn acquire(
        &self,
        name: &str,
        owner: &str,
        hold: Duration,
    ) -> impl Future<Output = Result<bool, LeaseError>> + Send;
    /// Gives it back, if `owner` still holds it.
    fn release(
        &self,
        name: &str,
        owner: &str,
    ) -> impl Future<Output = Result<(), LeaseError>> + Send;
}

#[cfg(any(test, feature = "test-util"))]
pub use memory::MemoryLease;

#[cfg(any(test, feature = "test-util"))]
mod memory {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use super::{Lease, LeaseError};

    /// Leases in memory, for tests: one process's callers.
    #[derive(Debug, Default)]
    pub struct MemoryLease(Mutex<HashMap<String, (String, Instant)>>);

    impl Lease for MemoryLease {
        async fn acquire(
            &self,
            name: &str,
            owner: &str,
            hold: Duration,
        ) -> Result<bool, LeaseError> {
            let mut leases = self.0.lock().map_err(|_| LeaseError::new("poisoned"))?;
            let now = Instant::now();
            match leases.get(name) {
                Some((holder, until)) if *until > now && holder != owner => Ok(false),
                _ => {
                    leases.insert(name.to_owned(), (owner.to_owned(), now + hold));
                    Ok(true)
                }
            }
        }

        async fn release(&self, name: &str, owner: &str) -> Result<(), LeaseError> {
            let mut leases = self.0.lock().map_err(|_| LeaseError::new("poisoned"))?;
            if leases
                .get(name)
                .is_some_and(|(held_by, _)| held_by == owner)
            {
                leases.remove(name);
            }
            Ok(())
        }
    }
}
