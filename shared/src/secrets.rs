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

    /// The API keys of a secret holding a JSON list of keys, or one key per line.
    pub fn keys(&self) -> Vec<String> {
        let text = self.0.trim();
        if text.starts_with('[') {
            return serde_json::from_str::<Vec<String>>(text).unwrap_or_default();
        }
        text.lines()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect()
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
    /// The current value of the secret `name` (a name or an ARN), perhaps cached.
    fn get(&self, name: &str) -> impl Future<Output = Result<Secret, SecretError>> + Send;
    /// The current value, read anew past any cache (after the old one was refused).
    fn fresh(&self, name: &str) -> impl Future<Output = Result<Secret, SecretError>> + Send;
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

    #[test]
    fn api_keys_are_a_json_list_or_one_per_line() {
        assert_eq!(Secret::new(r#"["k1","k2"]"#).keys(), ["k1", "k2"]);
        assert_eq!(Secret::new("k1\n\n k2 \n").keys(), ["k1", "k2"]);
        assert!(Secret::new("").keys().is_empty());
    }
}
