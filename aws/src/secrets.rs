//! Secrets Manager as the secret store, with a short cache so a warm function does
//! not read a secret on every request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use ghl_capi::secrets::{Secret, SecretError, SecretStore};

/// How long a read value is reused. Short, so a rotated token is picked up soon.
pub const DEFAULT_CACHE: Duration = Duration::from_secs(60);

/// Reads secrets from Secrets Manager.
#[derive(Debug)]
pub struct SecretsManager {
    client: Client,
    cache_for: Duration,
    cache: Mutex<HashMap<String, (Instant, Secret)>>,
}

impl SecretsManager {
    pub fn new(client: Client, cache_for: Duration) -> Self {
        SecretsManager {
            client,
            cache_for,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, name: &str) -> Option<Secret> {
        let cache = self.cache.lock().ok()?;
        let (at, secret) = cache.get(name)?;
        (at.elapsed() < self.cache_for).then(|| secret.clone())
    }
}

impl SecretStore for SecretsManager {
    async fn get(&self, name: &str) -> Result<Secret, SecretError> {
        match self.cached(name) {
            Some(secret) => Ok(secret),
            None => self.fresh(name).await,
        }
    }

    async fn fresh(&self, name: &str) -> Result<Secret, SecretError> {
        let answer = self
            .client
            .get_secret_value()
            .secret_id(name)
            // Always the current version: the default stage after a rotation is
            // not honoured by every implementation (moto among them).
            .version_stage("AWSCURRENT")
            .send()
            .await
            .map_err(|e| match e.into_service_error() {
                e if e.is_resource_not_found_exception() => SecretError::Missing(name.to_owned()),
                e => SecretError::Unavailable {
                    name: name.to_owned(),
                    reason: e.to_string(),
                },
            })?;
        let value = answer
            .secret_string
            .ok_or_else(|| SecretError::Unavailable {
                name: name.to_owned(),
                reason: "it holds no text".into(),
            })?;
        let secret = Secret::new(value);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(name.to_owned(), (Instant::now(), secret.clone()));
        }
        Ok(secret)
    }
}
