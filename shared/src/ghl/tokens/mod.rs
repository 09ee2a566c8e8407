//! Where the GHL client gets each location's access token, and a better one after GHL
//! refused it.
//!
//! - [`FixedTokens`]: Private Integration tokens (`pit-…`), fixed, never refreshed.
//! - [`ManagedTokens`]: a secret per location, `{prefix}{locationId}`, holding a
//!   Private Integration token or an OAuth token set, refreshed ahead of expiry and
//!   once after a `401` (see [`managed`] for how a refresh never loses a token).

mod managed;

use std::collections::HashMap;
use std::future::Future;

pub use managed::{App, MINT_FOR, MINT_PREFIX, ManagedTokens, REFRESH_MARGIN};

use super::reader::GhlError;
use super::wire::LocationToken;

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
    /// Whether the location is connected here: it has a token (one not retired),
    /// or an agency install left it to mint one. Only a connected location is
    /// among "all locations" of a pixel or an audience.
    fn connected(&self, location_id: &str) -> impl Future<Output = Result<bool, GhlError>> + Send;
    /// Records a location the app was installed on through its company.
    fn installed(
        &self,
        location_id: &str,
        company_id: &str,
    ) -> impl Future<Output = Result<(), GhlError>> + Send;
    /// Retires the tokens of a location or company the app was uninstalled from,
    /// by an uninstall GHL sent at `sent_at`.
    fn uninstalled(
        &self,
        location_id: Option<&str>,
        company_id: Option<&str>,
        sent_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> impl Future<Output = Result<(), GhlError>> + Send;
}

/// A fixed token per location.
#[derive(Debug, Clone, Default)]
pub struct FixedTokens(pub HashMap<String, LocationToken>);

impl TokenSource for FixedTokens {
    async fn token(&self, location_id: &str) -> Result<LocationToken, GhlError> {
        self.0
            .get(location_id)
            .cloned()
            .ok_or_else(|| GhlError::NoToken {
                what: format!("location {location_id}"),
            })
    }

    async fn refreshed(&self, _: &str, _: &LocationToken) -> Result<LocationToken, GhlError> {
        Err(GhlError::Unauthorized)
    }

    async fn connected(&self, location_id: &str) -> Result<bool, GhlError> {
        Ok(self.0.contains_key(location_id))
    }

    /// Fixed tokens are the user's to add, in the environment.
    async fn installed(&self, _: &str, _: &str) -> Result<(), GhlError> {
        Ok(())
    }

    /// Fixed tokens are the user's to revoke, in GHL.
    async fn uninstalled(
        &self,
        _: Option<&str>,
        _: Option<&str>,
        _: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), GhlError> {
        Ok(())
    }
}
