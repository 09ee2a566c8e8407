//! Installing the marketplace app: the install URL, and `GET /oauth/callback`, which
//! exchanges the authorization code for a token set and stores it, per location or,
//! for an agency install, per company, its approved locations left to mint when
//! first needed.
//!
//! Two ways in:
//! - an install we start (`ghl-capi oauth url`): `state` guards the callback
//!   against cross-site request forgery ([`link`]), accepted for an hour and once
//!   (each is claimed in the state table, so a callback replayed within the hour
//!   is refused);
//! - an install started in GHL's marketplace (*Add App* on the app's page): GHL
//!   redirects with the code only, no `state` of ours (`reference/ghl-api.md`
//!   §8.3). Anyone may install a public app, so such an install is taken only
//!   when the code's exchange shows an agency this deployment serves
//!   (`GHL_COMPANY_ID`); any other is refused, logged and counted, and its token
//!   set dropped: a stranger's install never reaches a pixel.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use std::time::Duration;

mod link;
mod page;

use link::STATE_MAX_AGE_SECONDS;
pub use link::{AUTHORIZE_URL, NAMES_SCOPES, Wants, check_state, scopes, state, url};
pub use page::page;

use super::oauth::{AppError, OAuthClient, OAuthError, TokenSet, read_app};
use super::tokens::{MINT_FOR, MINT_PREFIX};
use crate::ports::lease::Lease;
use crate::ports::queue::{Outgoing, Queue};
use crate::ports::secrets::VersionedSecrets;
use crate::ports::state::StateStore;

/// Who installs: one sub-account, or an agency for its locations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserType {
    Location,
    Company,
}

impl UserType {
    fn name(self) -> &'static str {
        match self {
            UserType::Location => "Location",
            UserType::Company => "Company",
        }
    }
}

/// What an install stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    Location {
        location_id: String,
    },
    /// An agency: its approved locations' tokens are minted when first needed.
    Company {
        company_id: String,
        locations: Vec<String>,
    },
}

/// Why an install did not complete.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("the app is not set up for installs here (GHL_APP_SECRET is not set)")]
    NotConfigured,
    #[error("GHL reported: {0}")]
    Denied(String),
    #[error("the callback has no {0}")]
    Missing(&'static str),
    #[error("{0}; installs resume once it can be read")]
    AppUnavailable(#[from] AppError),
    #[error("the install link is invalid or older than an hour; start the install again")]
    BadState,
    #[error("this install link was used already; start the install again")]
    StateUsed,
    #[error(
        "this install started in GHL's marketplace, without a link of ours: this deployment takes such installs only for the agencies it names (GHL_COMPANY_ID, the stack's GhlCompanyId); start it with ghl-capi oauth url instead"
    )]
    NoState,
    #[error("this deployment does not serve agency {company_id}: the install is not kept")]
    Stranger { company_id: String },
    #[error("GHL did not give a token: {0}")]
    Token(#[from] OAuthError),
    #[error("GHL's token answer names no {0}")]
    Incomplete(&'static str),
    #[error("the token could not be stored: {0}")]
    Storage(String),
}

impl InstallError {
    pub fn status(&self) -> u16 {
        match self {
            InstallError::NotConfigured => 404,
            InstallError::Denied(_) | InstallError::Missing(_) => 400,
            InstallError::BadState
            | InstallError::StateUsed
            | InstallError::NoState
            | InstallError::Stranger { .. } => 403,
            InstallError::Token(OAuthError::Refused { .. }) | InstallError::Incomplete(_) => 400,
            InstallError::Token(OAuthError::Unavailable(_) | OAuthError::Unknown(_))
            | InstallError::Storage(_)
            | InstallError::AppUnavailable(_) => 503,
        }
    }
}

/// The install step of the intake API.
pub trait Install: Send + Sync {
    /// Handles `GET /oauth/callback?{query}`.
    fn callback(
        &self,
        query: &str,
        now: DateTime<Utc>,
    ) -> impl std::future::Future<Output = Result<Installed, InstallError>> + Send;
}

/// Installs not offered (local mode uses Private Integration tokens).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoInstall;

impl Install for NoInstall {
    async fn callback(&self, _: &str, _: DateTime<Utc>) -> Result<Installed, InstallError> {
        Err(InstallError::NotConfigured)
    }
}

/// No app configured: the callback is closed.
impl<I: Install> Install for Option<I> {
    async fn callback(&self, query: &str, now: DateTime<Utc>) -> Result<Installed, InstallError> {
        match self {
            Some(installer) => installer.callback(query, now).await,
            None => Err(InstallError::NotConfigured),
        }
    }
}

/// A location newly connected, announced so that its baseline is taken at once
/// (the reconciliation function seeds it): `{"connected": "<locationId>"}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Connected {
    pub connected: String,
}

/// Installs into `secrets` under `{prefix}{locationId}` and `{prefix}company-{id}`.
#[derive(Debug)]
pub struct Installer<V, L, M, C> {
    /// Where token sets are stored, and the app's credentials read: for every
    /// install, so credentials stored (or fixed) after a start without them are
    /// used at once, by warm instances too.
    pub secrets: V,
    /// The secret holding the app's `{"client_id", "client_secret"}`.
    pub app_secret: String,
    /// GHL's API (the token endpoints).
    pub base_url: String,
    pub timeout: Duration,
    pub prefix: String,
    /// The callback URL registered with the app, when GHL must be told it.
    pub redirect_uri: Option<String>,
    /// Where each `state` is claimed once: a link's second use is refused.
    pub claims: L,
    /// Where an agency's locations are left to mint ([`MINT_PREFIX`] records).
    pub pending: M,
    /// Where each location installed is announced ([`Connected`]), one message
    /// each; `None`, or a failed send, leaves its baseline to the next scheduled
    /// reconciliation, which seeds every location not yet seeded.
    pub connected: Option<C>,
    /// `GHL_COMPANY_ID`: the agencies whose installs started in GHL's marketplace
    /// (no `state`) are taken; none, and such installs are refused.
    pub companies: Vec<String>,
}

impl<V: VersionedSecrets, L: Lease, M: StateStore, C: Queue> Installer<V, L, M, C> {
    /// Claims `state` (valid, and not yet used) for this callback, for as long as
    /// it could be valid: a replayed callback finds it taken.
    async fn claim(&self, state: &str) -> Result<(), InstallError> {
        let name = format!(
            "oauth-state#{}",
            hex::encode(Sha256::digest(state.as_bytes()))
        );
        let hold = Duration::from_secs(STATE_MAX_AGE_SECONDS as u64 + 60);
        // An owner of its own: a second claim of the same state must fail.
        let owner = format!(
            "callback-{}",
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        match self.claims.acquire(&name, &owner, hold).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(InstallError::StateUsed),
            Err(e) => Err(InstallError::Storage(e.to_string())),
        }
    }

    async fn store(&self, name: &str, set: &TokenSet) -> Result<(), InstallError> {
        self.secrets
            .put(name, &set.to_json())
            .await
            .map(|_| ())
            .map_err(|e| InstallError::Storage(e.to_string()))
    }

    /// Tells the reconciliation `locations` are connected. The install stands
    /// either way: a failed send is logged and counted, and only delays the
    /// baseline until the next scheduled run.
    async fn announce(&self, locations: &[String]) {
        let Some(queue) = &self.connected else {
            return;
        };
        let messages = locations
            .iter()
            .map(|location| Connected {
                connected: location.clone(),
            })
            .map(|c| Outgoing::new(crate::ports::text(&c)))
            .collect();
        if let Err(e) = queue.send_all(messages).await {
            tracing::warn!(
                locations = locations.len(),
                error = %e,
                "cannot announce the install: the next scheduled reconciliation takes the baseline"
            );
            crate::telemetry::skipped("seed_deferred");
        }
    }
}

impl<V: VersionedSecrets, L: Lease, M: StateStore, C: Queue> Install for Installer<V, L, M, C> {
    async fn callback(&self, query: &str, now: DateTime<Utc>) -> Result<Installed, InstallError> {
        let pairs: Vec<(String, String)> =
            reqwest::Url::parse(&format!("http://callback/?{query}"))
                .map(|u| u.query_pairs().into_owned().collect())
                .unwrap_or_default();
        let param = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        if let Some(error) = param("error") {
            return Err(InstallError::Denied(
                param("error_description").unwrap_or(error).to_owned(),
            ));
        }
        let code = param("code").ok_or(InstallError::Missing("code"))?;
        let app = read_app(&self.secrets, &self.app_secret).await?;
        // Ours: the link's signed state says which kind of install it is.
        let state = param("state");
        let user_type = match state {
            Some(state) => {
                let user_type = check_state(&app, state, now)?;
                self.claim(state).await?;
                Some(user_type)
            }
            None if self.companies.is_empty() => {
                tracing::warn!(
                    "an install started in GHL's marketplace refused: GHL_COMPANY_ID names no agency"
                );
                crate::telemetry::skipped("marketplace_install_refused");
                return Err(InstallError::NoState);
            }
            None => None,
        };
        let oauth = OAuthClient::new(&self.base_url, app, self.timeout)
            .map_err(|e| InstallError::Token(OAuthError::Unavailable(std::sync::Arc::new(e))))?;
        let answer = oauth
            .exchange_code(
                code,
                user_type.map(UserType::name),
                self.redirect_uri.as_deref(),
            )
            .await?;
        let approved = answer.approved_locations.clone();
        let mut set = TokenSet::from_response(answer, now);
        set.installed_at = Some(now);
        let user_type = match user_type {
            Some(ours) => ours,
            None => self.marketplace_started(&set)?,
        };
        match user_type {
            UserType::Location => {
                let location_id = set
                    .location_id
                    .clone()
                    .ok_or(InstallError::Incomplete("locationId"))?;
                self.store(&format!("{}{location_id}", self.prefix), &set)
                    .await?;
                tracing::info!(location_id, "app installed for a location");
                self.announce(std::slice::from_ref(&location_id)).await;
                Ok(Installed::Location { location_id })
            }
            UserType::Company => {
                let company_id = set
                    .company_id
                    .clone()
                    .ok_or(InstallError::Incomplete("companyId"))?;
                self.store(&format!("{}company-{company_id}", self.prefix), &set)
                    .await?;
                // Minted when first needed (the enrichment's token source), not
                // here: an agency of hundreds of locations would outrun the
                // callback's time. Recorded in one batch write.
                let pending: Vec<(String, String)> = approved
                    .iter()
                    .map(|location| (format!("{MINT_PREFIX}{location}"), company_id.clone()))
                    .collect();
                self.pending
                    .set_records(&pending, MINT_FOR)
                    .await
                    .map_err(|e| InstallError::Storage(e.to_string()))?;
                tracing::info!(
                    company_id,
                    locations = approved.len(),
                    "app installed for an agency; its locations' tokens are minted when first needed"
                );
                self.announce(&approved).await;
                Ok(Installed::Company {
                    company_id,
                    locations: approved,
                })
            }
        }
    }
}

impl<V, L, M, C> Installer<V, L, M, C> {
    /// A marketplace-started install's kind, as GHL's answer gives it, once its
    /// agency is one this deployment serves; else refused (the set is dropped,
    /// never stored), logged and counted.
    fn marketplace_started(&self, set: &TokenSet) -> Result<UserType, InstallError> {
        let company_id = set
            .company_id
            .clone()
            .ok_or(InstallError::Incomplete("companyId"))?;
        if !self.companies.contains(&company_id) {
            tracing::warn!(
                company_id,
                location_id = set.location_id.as_deref(),
                "an install started in GHL's marketplace by an agency this deployment does not serve: refused, its token dropped"
            );
            crate::telemetry::skipped("stranger_install");
            return Err(InstallError::Stranger { company_id });
        }
        match set.user_type.as_deref() {
            Some("Company") => Ok(UserType::Company),
            // GHL's FAQ: the person picks a location.
            _ => Ok(UserType::Location),
        }
    }
}
