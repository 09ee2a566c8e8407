//! The secret store port: Meta access tokens, conversion API keys and GHL tokens are
//! read through it (Secrets Manager on AWS, the environment in local mode). Secret
//! values never reach logs: [`Secret`]'s `Debug` is redacted.

use std::fmt;
use std::future::Future;

use super::BoxError;

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

    /// The access token: the whole value when the secret is plain text, else its
    /// `access_token` field, so a bare token and a token set both work.
    pub fn token(&self) -> Option<Secret> {
        let text = self.0.trim();
        if text.starts_with('{') {
            self.field("access_token")
        } else {
            (!text.is_empty()).then(|| Secret::new(text))
        }
    }

    /// A text field of a secret holding a JSON object.
    pub fn field(&self, name: &str) -> Option<Secret> {
        let value: serde_json::Value = serde_json::from_str(self.0.trim()).ok()?;
        value.get(name)?.as_str().map(Secret::new)
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
    #[error("secret {name} could not be read: {source}")]
    Unavailable {
        name: String,
        #[source]
        source: BoxError,
    },
}

impl SecretError {
    /// The secret `name` could not be read, because of `source`.
    pub fn unavailable(name: &str, source: impl Into<BoxError>) -> Self {
        SecretError::Unavailable {
            name: name.to_owned(),
            source: source.into(),
        }
    }
}

/// Where secrets are kept.
pub trait SecretStore: Send + Sync {
    /// The current value of the secret `name` (a name or an ARN), perhaps cached.
    fn get(&self, name: &str) -> impl Future<Output = Result<Secret, SecretError>> + Send;
    /// The current value, read anew past any cache (after the old one was refused).
    fn fresh(&self, name: &str) -> impl Future<Output = Result<Secret, SecretError>> + Send;
}

/// One version of a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub version: String,
    pub value: Secret,
}

/// Secrets with versions and stages (Secrets Manager's `AWSCURRENT` and
/// `AWSPENDING`): what the GHL token lifecycle needs to write a refreshed token
/// durably before making it the one everybody uses.
pub trait VersionedSecrets: SecretStore {
    /// The current version, read anew; `None` if the secret does not exist.
    fn current(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Versioned>, SecretError>> + Send;
    /// The pending version, if any.
    fn pending(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Versioned>, SecretError>> + Send;
    /// Stores `value` as the pending version; its version id.
    fn stage_pending(
        &self,
        name: &str,
        value: &str,
    ) -> impl Future<Output = Result<String, SecretError>> + Send;
    /// Makes `version` current if `previous` still is (`false` if another version
    /// became current first).
    fn promote(
        &self,
        name: &str,
        version: &str,
        previous: &str,
    ) -> impl Future<Output = Result<bool, SecretError>> + Send;
    /// Stores `value` as the current version, creating the secret if need be.
    fn put(
        &self,
        name: &str,
        value: &str,
    ) -> impl Future<Output = Result<String, SecretError>> + Send;
}

/// Secrets from environment variables, named as the variables are: local mode's store.
#[derive(Debug, Default, Clone)]
pub struct EnvSecrets;

impl SecretStore for EnvSecrets {
    async fn get(&self, name: &str) -> Result<Secret, SecretError> {
        std::env::var(name)
            .map(Secret::new)
            .map_err(|_| SecretError::Missing(name.to_owned()))
    }

    async fn fresh(&self, name: &str) -> Result<Secret, SecretError> {
        self.get(name).await
    }
}

#[cfg(any(test, feature = "test-util"))]
pub use memory::MemorySecrets;

#[cfg(any(test, feature = "test-util"))]
mod memory {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::{Secret, SecretError, SecretStore, Versioned, VersionedSecrets};

    /// Versioned secrets in memory, for tests: every version is kept.
    #[derive(Debug, Default, Clone)]
    pub struct MemorySecrets {
        /// Per secret: its versions in order, and which is current and pending
        /// (shared by clones, as one store seen by two processes).
        secrets: std::sync::Arc<Mutex<HashMap<String, MemorySecret>>>,
    }

    #[derive(Debug, Default)]
    struct MemorySecret {
        versions: Vec<String>,
        current: Option<usize>,
        pending: Option<usize>,
    }

    impl MemorySecrets {
        fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, MemorySecret>) -> T) -> T {
            let mut secrets = self
                .secrets
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut secrets)
        }

        fn read(&self, name: &str, pick: fn(&MemorySecret) -> Option<usize>) -> Option<Versioned> {
            self.with(|all| {
                let secret = all.get(name)?;
                let i = pick(secret)?;
                Some(Versioned {
                    version: i.to_string(),
                    value: Secret::new(secret.versions[i].clone()),
                })
            })
        }
    }

    impl SecretStore for MemorySecrets {
        async fn get(&self, name: &str) -> Result<Secret, SecretError> {
            self.read(name, |s| s.current)
                .map(|v| v.value)
                .ok_or_else(|| SecretError::Missing(name.to_owned()))
        }

        async fn fresh(&self, name: &str) -> Result<Secret, SecretError> {
            self.get(name).await
        }
    }

    impl VersionedSecrets for MemorySecrets {
        async fn current(&self, name: &str) -> Result<Option<Versioned>, SecretError> {
            Ok(self.read(name, |s| s.current))
        }

        async fn pending(&self, name: &str) -> Result<Option<Versioned>, SecretError> {
            Ok(self.read(name, |s| s.pending))
        }

        async fn stage_pending(&self, name: &str, value: &str) -> Result<String, SecretError> {
            Ok(self.with(|all| {
                let secret = all.entry(name.to_owned()).or_default();
                secret.versions.push(value.to_owned());
                secret.pending = Some(secret.versions.len() - 1);
                (secret.versions.len() - 1).to_string()
            }))
        }

        async fn promote(
            &self,
            name: &str,
            version: &str,
            previous: &str,
        ) -> Result<bool, SecretError> {
            Ok(self.with(|all| {
                let Some(secret) = all.get_mut(name) else {
                    return false;
                };
                if secret.current.map(|c| c.to_string()).as_deref() != Some(previous) {
                    return false;
                }
                secret.current = version.parse().ok();
                true
            }))
        }

        async fn put(&self, name: &str, value: &str) -> Result<String, SecretError> {
            Ok(self.with(|all| {
                let secret = all.entry(name.to_owned()).or_default();
                secret.versions.push(value.to_owned());
                secret.current = Some(secret.versions.len() - 1);
                (secret.versions.len() - 1).to_string()
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_read_from_plain_text_or_a_json_field() {
        let plain = Secret::new(" pit-123\n");
        assert_eq!(plain.token(), Some(Secret::new("pit-123")));
        assert_eq!(plain.field("app_secret"), None);
        let set = Secret::new(r#"{"access_token":"at-1","app_secret":"s-1"}"#);
        assert_eq!(set.token(), Some(Secret::new("at-1")));
        assert_eq!(set.field("app_secret"), Some(Secret::new("s-1")));
        assert_eq!(Secret::new("  ").token(), None);
        assert_eq!(Secret::new("{}").token(), None);
    }
}
