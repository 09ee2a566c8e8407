//! Token sets kept as versioned secrets, refreshed one process at a time.
//!
//! # Refreshing without losing the token
//!
//! GHL returns a new refresh token with every refresh and the old one may die at
//! once, so two processes refreshing together, or one dying with the answer in
//! hand, could lose the location for good. Hence ([`refresh`]):
//!
//! 1. One refresh per location at a time, across processes: a [`Lease`] (a
//!    conditional write in DynamoDB), renewed while the refresh works. The others
//!    wait for the new current version and use it; a holder that dies frees the
//!    lease when it runs out.
//! 2. GHL's answer is written first, as the *pending* version, before anything
//!    else, marked with the version it was refreshed from; then it is promoted to
//!    current only if that version is still current (a compare-and-swap). Every
//!    other change of a set (retired by an uninstall, or by GHL's refusal) is
//!    written the same way, so nothing overwrites a rotation it did not see.
//! 3. Anyone who finds a pending version refreshed from the current one finishes
//!    the promotion instead of calling GHL: a crash after the write loses nothing.
//! 4. A crash before the write leaves the old refresh token current; the next
//!    refresh uses it again. If GHL keeps it valid, nothing is lost; if GHL has
//!    retired it, GHL refuses the grant, and the location is marked as needing a
//!    re-install and an alert is logged: never a silent loss, never an endless retry.
//!
//! Only GHL's clear refusal of *this location's grant* retires it. A refusal of
//! the app's own credentials re-reads them (they are read when first needed, not
//! at start, so a fixed secret reaches warm functions) and raises an alarm; a
//! refusal GHL does not explain is alarmed and tried again later; neither touches
//! any location. A token GHL refuses is refreshed once; refused again, it is not
//! refreshed again until its next scheduled renewal.
//!
//! An agency install leaves its locations to mint: each is minted from the
//! company's token when first needed ([`MINT_PREFIX`] records in the state store).

mod refresh;

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::TokenSource;
use crate::ghl::oauth::{OAuthClient, TokenSet, read_app};
use crate::ghl::reader::GhlError;
use crate::ghl::wire::LocationToken;
use crate::ports::lease::Lease;
use crate::ports::secrets::{SecretError, Versioned, VersionedSecrets};
use crate::ports::state::StateStore;

/// Refresh this long before expiry.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(15 * 60);

/// State records `mint#{locationId}`, holding the company id: a location an agency
/// install approved whose token is minted when first needed.
pub const MINT_PREFIX: &str = "mint#";
/// How long a location waits to be minted before its record runs out.
pub const MINT_FOR: Duration = Duration::from_secs(365 * 24 * 3600);

/// Where the marketplace app's credentials are, and what its client needs.
#[derive(Debug, Clone)]
pub struct App {
    /// The secret holding `{"client_id", "client_secret"}`.
    pub secret: String,
    pub base_url: String,
    pub timeout: Duration,
}

/// Token sets kept as versioned secrets, refreshed one process at a time.
#[derive(Debug)]
pub struct ManagedTokens<S, L, M> {
    secrets: S,
    lease: L,
    /// The locations to mint.
    state: M,
    app: Option<App>,
    /// The app's client, once its credentials were read; dropped when GHL
    /// refuses them, so the next use reads them anew.
    client: Mutex<Option<OAuthClient>>,
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
    match set.held() {
        true => Err(GhlError::Unauthorized),
        false => Ok(LocationToken(set.access_token.clone())),
    }
}

impl<S: VersionedSecrets, L: Lease, M: StateStore> ManagedTokens<S, L, M> {
    /// Token sets under `{prefix}{locationId}`, refreshed with the `app`'s
    /// credentials (without it, only fixed tokens work), the locations an agency
    /// install left to mint in `state`.
    pub fn new(
        secrets: S,
        lease: L,
        state: M,
        app: Option<App>,
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
            state,
            app,
            client: Mutex::new(None),
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

    /// The app's client: its credentials read when first needed, and again after
    /// GHL refused them.
    async fn oauth(&self) -> Result<OAuthClient, GhlError> {
        let app = self.app.as_ref().ok_or(GhlError::Unauthorized)?;
        if let Some(client) = self.cached_client().clone() {
            return Ok(client);
        }
        let credentials = read_app(&self.secrets, &app.secret)
            .await
            .map_err(|e| GhlError::unavailable("the app's credentials", e))?;
        let client = OAuthClient::new(&app.base_url, credentials, app.timeout)
            .map_err(|e| GhlError::unavailable("the app's client", e))?;
        *self.cached_client() = Some(client.clone());
        Ok(client)
    }

    fn cached_client(&self) -> std::sync::MutexGuard<'_, Option<OAuthClient>> {
        self.client.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn current(&self, name: &str) -> Result<Stored, GhlError> {
        match self.secrets.current(name).await {
            Ok(Some(v)) => stored(v),
            Ok(None) | Err(SecretError::Missing(_)) => Err(no_token(name)),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Writes `set` in place of `seen`, if `seen` is still current (pending
    /// first, then promoted): whether it was.
    async fn replace(&self, name: &str, seen: &Stored, set: &TokenSet) -> Result<bool, GhlError> {
        let version = self
            .secrets
            .stage_pending(name, &set.to_json())
            .await
            .map_err(unavailable)?;
        self.secrets
            .promote(name, &version, &seen.version)
            .await
            .map_err(unavailable)
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
        if current.set.held() {
            return Err(GhlError::Unauthorized);
        }
        if renewable(&current.set) && current.set.due(Utc::now(), REFRESH_MARGIN) {
            return self.refresh(name, current, false).await;
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
                Ok(c) if !c.set.held() && renewable(&c.set) && c.set.due(Utc::now(), margin) => {
                    self.refresh(name, c, false).await.map(|_| true)
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

    /// Records `location_id` as one to mint from `company_id`'s token when first
    /// needed, unless it has a working set already.
    async fn to_mint(&self, location_id: &str, company_id: &str) -> Result<(), GhlError> {
        let name = self.secret_name(location_id);
        match self.current(&name).await {
            Ok(current) if !current.set.held() => return Ok(()),
            Ok(_) | Err(GhlError::NoToken { .. }) => {}
            Err(e) => return Err(e),
        }
        let mut set = TokenSet::fixed("");
        set.company_id = Some(company_id.to_owned());
        set.location_id = Some(location_id.to_owned());
        set.user_type = Some("Location".into());
        set.expires_at = Some(chrono::DateTime::UNIX_EPOCH);
        set.installed_at = Some(Utc::now());
        self.secrets
            .put(&name, &set.to_json())
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

/// Whether a set can be renewed: it has a refresh token, or it was minted from a
/// company's token.
fn renewable(set: &TokenSet) -> bool {
    set.refresh_token.is_some() || (set.company_id.is_some() && set.location_id.is_some())
}

impl<S: VersionedSecrets, L: Lease, M: StateStore> TokenSource for ManagedTokens<S, L, M> {
    /// The location's token; one an agency install left to mint is minted first.
    async fn token(&self, location_id: &str) -> Result<LocationToken, GhlError> {
        let name = self.secret_name(location_id);
        match self.token_of(&name).await {
            Err(missing @ GhlError::NoToken { .. }) => {
                let record = format!("{MINT_PREFIX}{location_id}");
                let Some(company) = self.state.record(&record).await.map_err(unavailable)? else {
                    return Err(missing);
                };
                self.to_mint(location_id, &company).await?;
                let token = self.token_of(&name).await?;
                if let Err(e) = self.state.delete_record(&record).await {
                    // Harmless: the set exists now, so the record is never read again.
                    tracing::warn!(location_id, error = %crate::error::chain(&e), "cannot clear a minted location's record");
                }
                tracing::info!(
                    location_id,
                    company_id = company,
                    "minted the token of an agency's location"
                );
                Ok(token)
            }
            answer => answer,
        }
    }

    async fn refreshed(
        &self,
        location_id: &str,
        stale: &LocationToken,
    ) -> Result<LocationToken, GhlError> {
        let name = self.secret_name(location_id);
        let current = self.current(&name).await?;
        if current.set.access_token != stale.0 || current.set.held() {
            return usable(&current.set);
        }
        // Refreshed for a refusal already and refused again: another rotation
        // would not help (and each risks the refresh token).
        if !renewable(&current.set) || current.set.after_refusal {
            return Err(GhlError::Unauthorized);
        }
        self.refresh(&name, current, true).await
    }

    /// A set that is not retired, or a record left to mint one.
    async fn connected(&self, location_id: &str) -> Result<bool, GhlError> {
        match self.secrets.get(&self.secret_name(location_id)).await {
            Ok(secret) => {
                let retired = TokenSet::parse(secret.expose())
                    .is_none_or(|set| set.needs_reinstall.is_some());
                return Ok(!retired);
            }
            Err(SecretError::Missing(_)) => {}
            Err(e) => return Err(unavailable(e)),
        }
        let record = format!("{MINT_PREFIX}{location_id}");
        let minted = self.state.record(&record).await.map_err(unavailable)?;
        Ok(minted.is_some())
    }

    /// Creates the location's record when its company's token set is held: a set
    /// with no token yet, due at once, so its first use mints one. A location that
    /// already has a working set keeps it.
    async fn installed(&self, location_id: &str, company_id: &str) -> Result<(), GhlError> {
        match self.current(&self.company_secret_name(company_id)).await {
            Ok(_) => {}
            // Not an agency install we hold: the location's own install stores it.
            Err(GhlError::NoToken { .. }) => return Ok(()),
            Err(e) => return Err(e),
        }
        self.to_mint(location_id, company_id).await?;
        tracing::info!(
            secret = self.secret_name(location_id),
            "app installed on a location of its agency"
        );
        Ok(())
    }

    /// Marks the token set as needing a re-install: kept for the record, never used
    /// or refreshed again until the app is installed anew. Written over the version
    /// read, so a refresh in between is retired too, not overwritten. An uninstall
    /// GHL sent (`sent_at`) before the set was installed is about an earlier
    /// install (a late retry, a held job): the install stands. A location an
    /// agency install left to mint is not minted.
    async fn uninstalled(
        &self,
        location_id: Option<&str>,
        company_id: Option<&str>,
        sent_at: Option<DateTime<Utc>>,
    ) -> Result<(), GhlError> {
        let name = match (location_id, company_id) {
            (Some(location), _) => self.secret_name(location),
            (None, Some(company)) => self.company_secret_name(company),
            (None, None) => return Ok(()),
        };
        if let Some(location) = location_id {
            let record = format!("{MINT_PREFIX}{location}");
            self.state
                .delete_record(&record)
                .await
                .map_err(unavailable)?;
        }
        for _ in 0..3 {
            let current = match self.current(&name).await {
                Ok(current) => current,
                // Nothing stored: nothing to retire.
                Err(GhlError::NoToken { .. }) => return Ok(()),
                Err(e) => return Err(e),
            };
            if let (Some(installed), Some(sent)) = (current.set.installed_at, sent_at)
                && sent < installed
            {
                tracing::info!(
                    secret = name,
                    %installed,
                    %sent,
                    "an uninstall sent before the current install: the install stands"
                );
                return Ok(());
            }
            let mut set = current.set.clone();
            set.needs_reinstall = Some("the app was uninstalled".into());
            if self.replace(&name, &current, &set).await? {
                tracing::warn!(secret = name, "app uninstalled: its GHL tokens are retired");
                return Ok(());
            }
        }
        Err(GhlError::unavailable(
            "token store",
            "the token set kept changing while it was being retired",
        ))
    }
}
