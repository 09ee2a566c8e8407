//! Secrets Manager as the secret store, with a short cache so a warm function does
//! not read a secret on every request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use ghl_capi::ports::secrets::{Secret, SecretError, SecretStore, Versioned, VersionedSecrets};

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

    fn forget(&self, name: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(name);
        }
    }

    /// The version at `stage`, or `None` when the secret or the stage is absent.
    async fn staged(&self, name: &str, stage: &str) -> Result<Option<Versioned>, SecretError> {
        let answer = self
            .client
            .get_secret_value()
            .secret_id(name)
            .version_stage(stage)
            .send()
            .await;
        match answer {
            Ok(answer) => Ok(match (answer.version_id, answer.secret_string) {
                (Some(version), Some(text)) => Some(Versioned {
                    version,
                    value: Secret::new(text),
                }),
                _ => None,
            }),
            Err(e) => match e.into_service_error() {
                e if e.is_resource_not_found_exception() => Ok(None),
                e => Err(unavailable(name, e)),
            },
        }
    }

    /// The names of every secret whose name starts with `prefix`.
    pub async fn names(&self, prefix: &str) -> Result<Vec<String>, SecretError> {
        use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
        let filter = Filter::builder()
            .key(FilterNameStringType::Name)
            .values(prefix)
            .build();
        let mut names = Vec::new();
        let mut pages = self
            .client
            .list_secrets()
            .filters(filter)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| unavailable(prefix, e.into_service_error()))?;
            names.extend(
                page.secret_list
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|s| s.name)
                    // The filter matches words too: keep true prefixes only.
                    .filter(|n| n.starts_with(prefix)),
            );
        }
        Ok(names)
    }

    fn cached(&self, name: &str) -> Option<Secret> {
        let cache = self.cache.lock().ok()?;
        let (at, secret) = cache.get(name)?;
        (at.elapsed() < self.cache_for).then(|| secret.clone())
    }
}

fn unavailable(name: &str, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> SecretError {
    SecretError::unavailable(name, e)
}

impl VersionedSecrets for SecretsManager {
    async fn current(&self, name: &str) -> Result<Option<Versioned>, SecretError> {
        self.staged(name, "AWSCURRENT").await
    }

    async fn pending(&self, name: &str) -> Result<Option<Versioned>, SecretError> {
        self.staged(name, "AWSPENDING").await
    }

    async fn stage_pending(&self, name: &str, value: &str) -> Result<String, SecretError> {
        let answer = self
            .client
            .put_secret_value()
            .secret_id(name)
            .secret_string(value)
            .version_stages("AWSPENDING")
            .send()
            .await
            .map_err(|e| unavailable(name, e.into_service_error()))?;
        answer
            .version_id
            .ok_or_else(|| unavailable(name, "no version id in the answer"))
    }

    async fn promote(
        &self,
        name: &str,
        version: &str,
        previous: &str,
    ) -> Result<bool, SecretError> {
        self.forget(name);
        let answer = self
            .client
            .update_secret_version_stage()
            .secret_id(name)
            .version_stage("AWSCURRENT")
            .move_to_version_id(version)
            // Refused unless `previous` is still current: the compare-and-swap.
            .remove_from_version_id(previous)
            .send()
            .await;
        match answer {
            Ok(_) => Ok(true),
            Err(e) => match e.into_service_error() {
                e if e.is_invalid_parameter_exception() => Ok(false),
                e => Err(unavailable(name, e)),
            },
        }
    }

    async fn put(&self, name: &str, value: &str) -> Result<String, SecretError> {
        self.forget(name);
        let answer = self
            .client
            .put_secret_value()
            .secret_id(name)
            .secret_string(value)
            .send()
            .await;
        match answer {
            Ok(answer) => answer.version_id,
            Err(e) => match e.into_service_error() {
                e if e.is_resource_not_found_exception() => {
                    self.client
                        .create_secret()
                        .name(name)
                        .secret_string(value)
                        .send()
                        .await
                        .map_err(|e| unavailable(name, e.into_service_error()))?
                        .version_id
                }
                e => return Err(unavailable(name, e)),
            },
        }
        .ok_or_else(|| unavailable(name, "no version id in the answer"))
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
                e => unavailable(name, e),
            })?;
        let value = answer
            .secret_string
            .ok_or_else(|| unavailable(name, "it holds no text"))?;
        let secret = Secret::new(value);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(name.to_owned(), (Instant::now(), secret.clone()));
        }
        Ok(secret)
    }
}
