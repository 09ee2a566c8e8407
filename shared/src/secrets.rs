//! The secret store port: Meta access tokens, conversion API keys and GHL tokens are
//! read through it (Secrets Manager on AWS, the environment in local mode). Secret
//! values never reach logs: [`Secret`]'s `Debug` is redacted.

use std::fmt;
use std::future::Future;

/// A secret value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {0} does not exist")]
    Missing(String),
    #[error("secret {name} could not be read: {reason}")]
    Unavailable { name: String, reason: String },
}

/// Where secrets are kept.
pub trait SecretStore: Send + Sync {
    /// The current value of the secret `name` (a name or an ARN).
    fn get(&self, name: &str) -> impl Future<Output = Result<Secret, SecretError>> + Send;
}
