//! One refresh of a token set, under its lease (see the module above for why each
//! step is where it is).

use std::time::Duration;

use chrono::Utc;

use super::{ManagedTokens, Stored, unavailable, usable};
use crate::ghl::oauth::{OAuthError, Refusal, TokenSet};
use crate::ghl::reader::GhlError;
use crate::ghl::wire::LocationToken;
use crate::ports::lease::Lease;
use crate::ports::secrets::VersionedSecrets;
use crate::ports::state::StateStore;

/// How long a refresh holds the lease at a time; it renews it every third of that
/// while it works.
const LEASE: Duration = Duration::from_secs(30);
/// How long a caller waits for another process's refresh.
const WAIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);

impl<S: VersionedSecrets, L: Lease, M: StateStore> ManagedTokens<S, L, M> {
    /// Makes sure `seen` is replaced by a refreshed version, by this process or
    /// another, and returns the new token. `after_refusal`: GHL refused `seen`'s
    /// token (so the new one is not refreshed again for a refusal).
    pub(super) async fn refresh(
        &self,
        name: &str,
        seen: Stored,
        after_refusal: bool,
    ) -> Result<LocationToken, GhlError> {
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
                let outcome = tokio::select! {
                    outcome = self.refresh_holding_lease(name, &seen, after_refusal, &lock) => outcome,
                    never = self.renew(&lock) => match never {},
                };
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

    /// Keeps the lease `lock` while the refresh works; never ends by itself. Once
    /// taken over it stops renewing (it must not take the lease back); the refresh
    /// checks the lease itself before it asks GHL. (A renewal that fails is
    /// logged: every write is a compare-and-swap anyway.)
    async fn renew(&self, lock: &str) -> std::convert::Infallible {
        loop {
            tokio::time::sleep(LEASE / 3).await;
            match self.lease.acquire(lock, &self.owner, LEASE).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(lock, "the refresh lease was taken over");
                    return std::future::pending().await;
                }
                Err(e) => {
                    tracing::warn!(lock, error = %crate::error::chain(&e), "cannot renew the refresh lease")
                }
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
        let pending = super::stored(pending)?;
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
        after_refusal: bool,
        lock: &str,
    ) -> Result<LocationToken, GhlError> {
        // Someone may have finished just before the lease was ours.
        let current = self.current(name).await?;
        if current.version != seen.version {
            return usable(&current.set);
        }
        if let Some(token) = self.finish_pending(name, &current).await? {
            return Ok(token);
        }
        let oauth = self.oauth().await?;
        // The last moment to stop: once GHL is asked, its answer must be kept. A
        // lease lost by now (this process stalled past it) may be another's, who
        // would send GHL the same refresh token: this one stops, and the other's
        // refresh stands.
        if !self
            .lease
            .acquire(lock, &self.owner, LEASE)
            .await
            .map_err(unavailable)?
        {
            tracing::warn!(
                secret = name,
                "the refresh lease was taken over: this refresh stops before asking GHL"
            );
            return Err(GhlError::unavailable(
                "token refresh",
                "the refresh lease was taken over: another process refreshes",
            ));
        }
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
                fresh.after_refusal = after_refusal;
                // Keep what a refresh answer may leave out.
                fresh.company_id = fresh.company_id.or_else(|| set.company_id.clone());
                fresh.location_id = fresh.location_id.or_else(|| set.location_id.clone());
                fresh.user_type = fresh.user_type.or_else(|| set.user_type.clone());
                fresh.installed_at = set.installed_at;
                // Written first: from here on a crash loses nothing (see above).
                if !self.replace(name, &current, &fresh).await? {
                    return usable(&self.current(name).await?.set);
                }
                tracing::info!(secret = name, "GHL token refreshed");
                crate::telemetry::token_refreshed();
                usable(&fresh)
            }
            Err(OAuthError::Refused {
                status,
                message,
                about,
            }) => self.refused(name, &current, status, message, about).await,
            Err(e @ OAuthError::Unavailable(_)) => Err(GhlError::unavailable("token endpoint", e)),
            Err(e @ OAuthError::Unknown(_)) => {
                self.unsure(name, &current, &e).await;
                Err(GhlError::unavailable("token endpoint", e))
            }
        }
    }

    /// A refresh whose answer was lost: GHL may have rotated the refresh token.
    /// Said so (an error line with an alert, a count) and written on the set, so
    /// that GHL refusing the kept token later is known for what it likely is.
    async fn unsure(&self, name: &str, current: &Stored, why: &OAuthError) {
        tracing::error!(
            secret = name,
            error = %crate::error::chain(why),
            alert = "ghl_refresh_unknown",
            "a token refresh's answer was lost: GHL may have rotated the refresh token; the kept one is tried next"
        );
        crate::telemetry::token_refresh_unknown();
        if current.set.unsure_since.is_some() {
            return;
        }
        let mut unsure = current.set.clone();
        unsure.unsure_since = Some(Utc::now());
        match self.replace(name, current, &unsure).await {
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(secret = name, error = %crate::error::chain(&e), "cannot note the lost refresh on the token set")
            }
        }
    }

    /// GHL refused the refresh: what `about` says decides what is retired.
    async fn refused(
        &self,
        name: &str,
        current: &Stored,
        status: u16,
        message: String,
        about: Refusal,
    ) -> Result<LocationToken, GhlError> {
        crate::telemetry::token_refused(match about {
            Refusal::Grant => "refused",
            Refusal::App => "app_refused",
            Refusal::Unknown => "refused_unknown",
        });
        match about {
            Refusal::Grant if current.set.unsure_since.is_some() => {
                let since = current.set.unsure_since.unwrap_or_default();
                let lost = format!(
                    "GHL refused the refresh token ({status}: {message}) after a refresh whose \
                     answer was lost ({since}): GHL most likely rotated it then. Install the app \
                     again on this location to connect it anew"
                );
                tracing::error!(
                    secret = name,
                    status,
                    reason = message,
                    %since,
                    alert = "ghl_refresh_token_lost",
                    "GHL refused a refresh token after a lost answer: not retired on GHL's word; \
                     its work is held until the app is installed again"
                );
                crate::telemetry::token_refused("refused_after_unknown");
                let mut held = current.set.clone();
                held.refresh_lost = Some(lost);
                if !self.replace(name, current, &held).await? {
                    return usable(&self.current(name).await?.set);
                }
                Err(GhlError::Unauthorized)
            }
            Refusal::Grant => {
                tracing::error!(
                    secret = name,
                    status,
                    reason = message,
                    alert = "ghl_reinstall_needed",
                    "GHL refused this location's grant: the app must be installed again"
                );
                let mut dead = current.set.clone();
                dead.needs_reinstall =
                    Some(format!("GHL refused the refresh ({status}): {message}"));
                if !self.replace(name, current, &dead).await? {
                    // Refreshed by someone else meanwhile: theirs stands.
                    return usable(&self.current(name).await?.set);
                }
                Err(GhlError::Unauthorized)
            }
            Refusal::App => {
                tracing::error!(
                    secret = name,
                    status,
                    reason = message,
                    alert = "ghl_app_credentials_refused",
                    "GHL refused the app's own credentials: no location is retired; the app secret is read again and the refresh tried later"
                );
                *self.cached_client() = None;
                Err(GhlError::AppRefused { message })
            }
            Refusal::Unknown => {
                tracing::error!(
                    secret = name,
                    status,
                    reason = message,
                    alert = "ghl_token_refused",
                    "GHL refused to refresh this token without saying why: nothing is retired, and it is tried again later"
                );
                Err(GhlError::Unauthorized)
            }
        }
    }
}
