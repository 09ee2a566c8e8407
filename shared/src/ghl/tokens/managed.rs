//! Token sets kept as versioned secrets, refreshed one process at a time.
//!
//! # Refreshing without losing the token
//!
//! GHL returns a new refresh token with every refresh and the old one may die at
//! once, so two processes refreshing together, or one dying with the answer in
//! hand, could lose the location for good. Hence:
//!
//! 1. One refresh per location at a time, across processes: a [`Lease`] (a
//!    conditional write in DynamoDB). The others wait for the new current version
//!    and use it; a holder that dies frees the lease when it runs out.
//! 2. GHL's answer is written first, as the *pending* version, before anything
//!    else, marked with the version it was refreshed from; then it is promoted to
//!    current only if that version is still current (a compare-and-swap).
//! 3. Anyone who finds a pending version refreshed from the current one finishes
//!    the promotion instead of calling GHL: a crash after the write loses nothing.
//! 4. A crash before the write leaves the old refresh token current; the next
//!    refresh uses it again. If GHL keeps it valid, nothing is lost; if GHL has
//!    retired it, GHL refuses, and the location is marked as needing a re-install
//!    and an alert is logged: never a silent loss, never an endless retry.

use std::time::Duration;

use chrono::Utc;

use super::TokenSource;
use crate::ghl::oauth::{OAuthClient, OAuthError, TokenSet};
use crate::ghl::reader::GhlError;
use crate::ghl::wire::LocationToken;
use crate::ports::lease::Lease;
use crate::ports::secrets::{SecretError, Versioned, VersionedSecrets};

/// Refresh this long before expiry.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(15 * 60);
/// How long a refresh may hold the lease (GHL answers in well under this).
const LEASE: Duration = Duration::from_secs(30);
/// How long a caller waits for another process's refresh.
const WAIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);

/// Token sets kept as versioned secrets, refreshed one process at a time.
#[derive(Debug)]
pub struct ManagedTokens<S, L> {
    secrets: S,
    lease: L,
    oauth: Option<OAuthClient>,
    prefix: String,
    owner: String,
}

fn no_token(secret: &str) -> GhlError {
    GhlError::NoToken {
        what: format!("the secret {secret}"),
    }
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> GhlError {
    GhlError::unavailable("token store", e)
}

/// A stored set, with its version.
struct Stored {
    version: String,
    set: TokenSet,
}

fn stored(versioned: Versioned) -> Result<Stored, GhlError> {
    let set = TokenSet::parse(versioned.value.expose()).ok_or(GhlError::Unauthorized)?;
    Ok(Stored {
        version: versioned.version,
        set,
    })
}

fn usable(set: &TokenSet) -> Result<LocationToken, GhlError> {
    match &set.needs_reinstall {
        Some(_) => Err(GhlError::Unauthorized),
        None => Ok(LocationToken(set.access_token.clone())),
    }
}

impl<S: VersionedSecrets, L: Lease> ManagedTokens<S, L> {
    /// Token sets under `{prefix}{locationId}`; `oauth` refreshes them (without it,
    /// only fixed tokens work).
    pub fn new(
        secrets: S,
        lease: L,
        oauth: Option<OAuthClient>,
        prefix: impl Into<String>,
    ) -> Self {
        let owner = format!(
            "{}-{}",
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        ManagedTokens {
            secrets,
            lease,
            oauth,
            prefix: prefix.into(),
            owner,
        }
    }

    /// The secret holding `location_id`'s tokens.
    pub fn secret_name(&self, location_id: &str) -> String {
        format!("{}{location_id}", self.prefix)
    }

    /// The secret holding a company's token set (for minting location tokens).
    pub fn company_secret_name(&self, company_id: &str) -> String {
        format!("{}company-{company_id}", self.prefix)
    }

    /// The secret store, for installs.
    pub fn secrets(&self) -> &S {
        &self.secrets
    }

    async fn current(&self, name: &str) -> Result<Stored, GhlError> {
        match self.secrets.current(name).await {
            Ok(Some(v)) => stored(v),
            Ok(None) | Err(SecretError::Missing(_)) => Err(no_token(name)),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// A usable token from the secret `name`, refreshed first when due.
    async fn token_of(&self, name: &str) -> Result<LocationToken, GhlError> {
        // Every GHL call starts here: the store's short cache serves it, and only a
        // set that is due is read anew, with its version, to be refreshed.
        let cached = match self.secrets.get(name).await {
            Ok(secret) => TokenSet::parse(secret.expose()).ok_or(GhlError::Unauthorized)?,
            Err(SecretError::Missing(_)) => return Err(no_token(name)),
            Err(e) => return Err(unavailable(e)),
        };
        if !(renewable(&cached) && cached.due(Utc::now(), REFRESH_MARGIN)) {
            // Refused once by GHL: only a new install helps (`usable` says so).
            return usable(&cached);
        }
        let current = self.current(name).await?;
        // Refused once by GHL: only a new install helps, so GHL is not asked again.
        if current.set.needs_reinstall.is_some() {
            return Err(GhlError::Unauthorized);
        }
        if renewable(&current.set) && current.set.due(Utc::now(), REFRESH_MARGIN) {
            return self.refresh(name, current).await;
        }
        usable(&current.set)
    }

    /// Refreshes every renewable token set due within `margin`: the scheduled
    /// refresh. Returns how many were refreshed, and the failures by secret.
    pub async fn refresh_due(
        &self,
        names: &[String],
        margin: Duration,
    ) -> (usize, Vec<(String, GhlError)>) {
        let mut refreshed = 0;
        let mut failed = Vec::new();
        for name in names {
            let outcome = match self.current(name).await {
                Ok(c)
                    if c.set.needs_reinstall.is_none()
                        && renewable(&c.set)
                        && c.set.due(Utc::now(), margin) =>
                {
                    self.refresh(name, c).await.map(|_| true)
                }
                Ok(_) => Ok(false),
                Err(e) => Err(e),
            };
            match outcome {
                Ok(true) => refreshed += 1,
                Ok(false) => {}
                Err(e) => failed.push((name.clone(), e)),
            }
        }
        (refreshed, failed)
    }

    /// Makes sure `seen` is replaced by a refreshed version, by this process or
    /// another, and returns the new token.
    async fn refresh(&self, name: &str, seen: Stored) -> Result<LocationToken, GhlError> {
        let lock = format!("ghl-refresh#{name}");
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Some(token) = self.finish_pending(name, &seen).await? {
                return Ok(token);
            }
            if self
                .lease
                .acquire(&lock, &self.owner, LEASE)
                .await
                .map_err(unavailable)?
            {
                let outcome = self.refresh_holding_lease(name, &seen).await;
                if let Err(e) = self.lease.release(&lock, &self.owner).await {
                    // Harmless: the lease runs out by itself; others wait that long.
                    tracing::warn!(
                        secret = name,
                        error = %crate::error::chain(&e),
                        "could not give back the refresh lease"
                    );
                }
                return outcome;
            }
            tokio::time::sleep(POLL).await;
            let now = self.current(name).await?;
            if now.version != seen.version {
                return usable(&now.set);
            }
            if std::time::Instant::now() > deadline {
                return Err(GhlError::unavailable(
                    "token refresh",
                    "another process's token refresh is taking too long",
                ));
            }
        }
    }

    /// Promotes a pending version refreshed from `seen` (a refresh that was written
    /// but not finished), if there is one.
    async fn finish_pending(
        &self,
        name: &str,
        seen: &Stored,
    ) -> Result<Option<LocationToken>, GhlError> {
        let Some(pending) = self.secrets.pending(name).await.map_err(unavailable)? else {
            return Ok(None);
        };
        let pending = stored(pending)?;
        if pending.set.refreshed_from.as_deref() != Some(seen.version.as_str()) {
            return Ok(None);
        }
        if self
            .secrets
            .promote(name, &pending.version, &seen.version)
            .await
            .map_err(unavailable)?
        {
            tracing::info!(secret = name, "finished a refresh another run had written");
            return Ok(Some(usable(&pending.set)?));
        }
        usable(&self.current(name).await?.set).map(Some)
    }

    async fn refresh_holding_lease(
        &self,
        name: &str,
        seen: &Stored,
    ) -> Result<LocationToken, GhlError> {
        // Someone may have finished just before the lease was ours.
        let current = self.current(name).await?;
        if current.version != seen.version {
            return usable(&current.set);
        }
        if let Some(token) = self.finish_pending(name, &current).await? {
            return Ok(token);
        }
        let oauth = self.oauth.as_ref().ok_or(GhlError::Unauthorized)?;
        let set = &current.set;
        let answer = match (&set.refresh_token, &set.company_id, &set.location_id) {
            (Some(refresh_token), _, _) => {
                oauth
                    .refresh(
                        refresh_token,
                        set.user_type.as_deref().unwrap_or("Location"),
                    )
                    .await
            }
            (None, Some(company), Some(location)) => {
                let company_token =
                    Box::pin(self.token_of(&self.company_secret_name(company))).await?;
                oauth
                    .location_token(&company_token.0, company, location)
                    .await
            }
            _ => return Err(GhlError::Unauthorized),
        };
        match answer {
            Ok(response) => {
                let mut fresh = TokenSet::from_response(response, Utc::now());
                fresh.refreshed_from = Some(current.version.clone());
                // Keep what a refresh answer may leave out.
                fresh.company_id = fresh.company_id.or_else(|| set.company_id.clone());
                fresh.location_id = fresh.location_id.or_else(|| set.location_id.clone());
                fresh.user_type = fresh.user_type.or_else(|| set.user_type.clone());
                // Written first: from here on a crash loses nothing (see above).
                let version = self
                    .secrets
                    .stage_pending(name, &fresh.to_json())
                    .await
                    .map_err(unavailable)?;
                if !self
                    .secrets
                    .promote(name, &version, &current.version)
                    .await
                    .map_err(unavailable)?
                {
                    return usable(&self.current(name).await?.set);
                }
                tracing::info!(secret = name, "GHL token refreshed");
                crate::telemetry::token_refreshed();
                usable(&fresh)
            }
            Err(OAuthError::Refused { status, message }) => {
                crate::telemetry::token_refused();
                tracing::error!(
                    secret = name,
                    status,
                    reason = message,
                    alert = "ghl_reinstall_needed",
                    "GHL refused to refresh this token: the app must be installed again"
                );
                let mut dead = set.clone();
                dead.needs_reinstall =
                    Some(format!("GHL refused the refresh ({status}): {message}"));
                self.secrets
                    .put(name, &dead.to_json())
                    .await
                    .map_err(unavailable)?;
                Err(GhlError::Unauthorized)
            }
            Err(e @ OAuthError::Unavailable(_)) => Err(GhlError::unavailable("token endpoint", e)),
        }
    }
}

/// Whether a set can be renewed: it has a refresh token, or it was minted from a
/// company's token.
fn renewable(set: &TokenSet) -> bool {
    set.refresh_token.is_some() || (set.company_id.is_some() && set.location_id.is_some())
}

impl<S: VersionedSecrets, L: Lease> TokenSource for ManagedTokens<S, L> {
    async fn token(&self, location_id: &str) -> Result<LocationToken, GhlError> {
        self.token_of(&self.secret_name(location_id)).await
    }

    async fn refreshed(
        &self,
        location_id: &str,
        stale: &LocationToken,
    ) -> Result<LocationToken, GhlError> {
        let name = self.secret_name(location_id);
        let current = self.current(&name).await?;
        if current.set.access_token != stale.0 || current.set.needs_reinstall.is_some() {
            return usable(&current.set);
        }
        if !renewable(&current.set) {
            return Err(GhlError::Unauthorized);
        }
        self.refresh(&name, current).await
    }

    /// Creates the location's record when its company's token set is held: a set
    /// with no token yet, due at once, so its first use mints one. A location that
    /// already has a working set keeps it.
    async fn installed(&self, location_id: &str, company_id: &str) -> Result<(), GhlError> {
        let name = self.secret_name(location_id);
        match self.current(&name).await {
            Ok(current) if current.set.needs_reinstall.is_none() => return Ok(()),
            Ok(_) | Err(GhlError::NoToken { .. }) => {}
            Err(e) => return Err(e),
        }
        match self.current(&self.company_secret_name(company_id)).await {
            Ok(_) => {}
            // Not an agency install we hold: the location's own install stores it.
            Err(GhlError::NoToken { .. }) => return Ok(()),
            Err(e) => return Err(e),
        }
        let mut set = TokenSet::fixed("");
        set.company_id = Some(company_id.to_owned());
        set.location_id = Some(location_id.to_owned());
        set.user_type = Some("Location".into());
        set.expires_at = Some(chrono::DateTime::UNIX_EPOCH);
        self.secrets
            .put(&name, &set.to_json())
            .await
            .map_err(unavailable)?;
        tracing::info!(secret = name, "app installed on a location of its agency");
        Ok(())
    }

    /// Marks the token set as needing a re-install: kept for the record, never used
    /// or refreshed again until the app is installed anew.
    async fn uninstalled(
        &self,
        location_id: Option<&str>,
        company_id: Option<&str>,
    ) -> Result<(), GhlError> {
        let name = match (location_id, company_id) {
            (Some(location), _) => self.secret_name(location),
            (None, Some(company)) => self.company_secret_name(company),
            (None, None) => return Ok(()),
        };
        let mut set = match self.current(&name).await {
            Ok(current) => current.set,
            // Nothing stored: nothing to retire.
            Err(GhlError::NoToken { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        set.needs_reinstall = Some("the app was uninstalled".into());
        self.secrets
            .put(&name, &set.to_json())
            .await
            .map_err(unavailable)?;
        tracing::warn!(secret = name, "app uninstalled: its GHL tokens are retired");
        Ok(())
    }
}
