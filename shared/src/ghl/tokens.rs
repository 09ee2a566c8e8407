//! Where the GHL client gets each location's access token, and a better one after GHL
//! refused it.
//!
//! - [`FixedTokens`]: Private Integration tokens (`pit-…`), fixed, never refreshed.
//! - [`StoredTokens`]: a secret per location, `{prefix}{locationId}`, holding a token
//!   or a token set (`{"access_token": …}`). After a `401` the secret is read anew,
//!   past the cache, in case another process has refreshed it meanwhile.

use std::collections::HashMap;
use std::future::Future;

use super::client::LocationToken;
use crate::enrich::GhlError;
use crate::secrets::{SecretError, SecretStore};

/// A location's tokens.
pub trait TokenSource: Send + Sync {
    /// The token to use now.
    fn token(
        &self,
        location_id: &str,
    ) -> impl Future<Output = Result<LocationToken, GhlError>> + Send;
    /// A token to try once more after GHL refused `stale`, or `Unauthorized` if
    /// there is none better.
    fn refreshed(
        &self,
        location_id: &str,
        stale: &LocationToken,
    ) -> impl Future<Output = Result<LocationToken, GhlError>> + Send;
}

/// A fixed token per location.
#[derive(Debug, Clone, Default)]
pub struct FixedTokens(pub HashMap<String, LocationToken>);

impl TokenSource for FixedTokens {
    async fn token(&self, location_id: &str) -> Result<LocationToken, GhlError> {
        self.0
            .get(location_id)
            .cloned()
            .ok_or(GhlError::Unauthorized)
    }

    async fn refreshed(&self, _: &str, _: &LocationToken) -> Result<LocationToken, GhlError> {
        Err(GhlError::Unauthorized)
    }
}

/// A token per location in the secret store.
#[derive(Debug, Clone)]
pub struct StoredTokens<S> {
    store: S,
    prefix: String,
}

impl<S: SecretStore> StoredTokens<S> {
    /// Tokens kept under `{prefix}{locationId}`.
    pub fn new(store: S, prefix: impl Into<String>) -> Self {
        StoredTokens {
            store,
            prefix: prefix.into(),
        }
    }

    fn read(
        secret: Result<crate::secrets::Secret, SecretError>,
    ) -> Result<LocationToken, GhlError> {
        match secret {
            Ok(secret) => secret
                .token()
                .map(|t| LocationToken(t.expose().to_owned()))
                .ok_or(GhlError::Unauthorized),
            Err(SecretError::Missing(_)) => Err(GhlError::Unauthorized),
            Err(e) => Err(GhlError::Unavailable(e.to_string())),
        }
    }
}

impl<S: SecretStore> TokenSource for StoredTokens<S> {
    async fn token(&self, location_id: &str) -> Result<LocationToken, GhlError> {
        Self::read(
            self.store
                .get(&format!("{}{location_id}", self.prefix))
                .await,
        )
    }

    async fn refreshed(
        &self,
        location_id: &str,
        stale: &LocationToken,
    ) -> Result<LocationToken, GhlError> {
        let token = Self::read(
            self.store
                .fresh(&format!("{}{location_id}", self.prefix))
                .await,
        )?;
        if token.0 == stale.0 {
            Err(GhlError::Unauthorized)
        } else {
            Ok(token)
        }
    }
}
