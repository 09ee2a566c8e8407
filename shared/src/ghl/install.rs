//! Installing the marketplace app: the install URL, and `GET /oauth/callback`, which
//! exchanges the authorization code for a token set and stores it, per location or,
//! for an agency install, per company, its approved locations left to mint when
//! first needed.
//!
//! `state` guards the callback against cross-site request forgery: it is
//! `{issued}.{nonce}.{L|C}.{mac}`, the MAC an HMAC-SHA256 under the app's client
//! secret, accepted for an hour and once (each is claimed in the state table, so
//! a callback replayed within the hour is refused).

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use std::time::Duration;

use super::oauth::{AppError, OAuthApp, OAuthClient, OAuthError, TokenSet, read_app};
use super::tokens::{MINT_FOR, MINT_PREFIX};
use crate::ports::lease::Lease;
use crate::ports::queue::{Outgoing, Queue};
use crate::ports::secrets::VersionedSecrets;
use crate::ports::state::StateStore;

/// Where GHL asks the user to choose the location(s) to install into.
pub const AUTHORIZE_URL: &str = "https://marketplace.gohighlevel.com/v2/oauth/chooselocation";
/// How long an install link stays valid.
const STATE_MAX_AGE_SECONDS: i64 = 3600;

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
            InstallError::BadState | InstallError::StateUsed => 403,
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

/// The scopes the app needs for rules on `triggers` (by their mapping names,
/// `opportunity.status_changed`, …): contacts always (every rule reads the contact,
/// its notes, tasks and appointments), the webhooks its triggers listen to, and, for
/// an agency install, minting location tokens.
pub fn scopes<'a>(
    triggers: impl IntoIterator<Item = &'a str>,
    user_type: UserType,
) -> Vec<&'static str> {
    let mut scopes = vec!["contacts.readonly"];
    for trigger in triggers {
        let scope = match trigger.split('.').next() {
            Some("opportunity") => Some("opportunities.readonly"),
            Some("appointment") => Some("calendars/events.readonly"),
            _ => None,
        };
        if let Some(scope) = scope
            && !scopes.contains(&scope)
        {
            scopes.push(scope);
        }
    }
    if user_type == UserType::Company {
        scopes.extend(["oauth.readonly", "oauth.write"]);
    }
    scopes
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
}

fn mac(secret: &str, text: &str) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(b"ghl-capi install state\0");
    mac.update(text.as_bytes());
    mac
}

/// A fresh `state` value for an install link.
pub fn state(app: &OAuthApp, user_type: UserType, now: DateTime<Utc>) -> String {
    let nonce = hex::encode(
        &Sha256::digest(format!(
            "{}:{}:{:?}",
            std::process::id(),
            now.timestamp_nanos_opt().unwrap_or_default(),
            std::thread::current().id()
        ))[..12],
    );
    let kind = match user_type {
        UserType::Location => "L",
        UserType::Company => "C",
    };
    let text = format!("{}.{nonce}.{kind}", now.timestamp());
    let tag = hex::encode(mac(&app.client_secret, &text).finalize().into_bytes());
    format!("{text}.{tag}")
}

/// Checks a returned `state`; the install's user type.
pub fn check_state(
    app: &OAuthApp,
    state: &str,
    now: DateTime<Utc>,
) -> Result<UserType, InstallError> {
    let (text, tag) = state.rsplit_once('.').ok_or(InstallError::BadState)?;
    let tag = hex::decode(tag).map_err(|_| InstallError::BadState)?;
    mac(&app.client_secret, text)
        .verify_slice(&tag)
        .map_err(|_| InstallError::BadState)?;
    let mut parts = text.split('.');
    let issued: i64 = parts
        .next()
        .and_then(|t| t.parse().ok())
        .ok_or(InstallError::BadState)?;
    let age = now.timestamp() - issued;
    if !(0..=STATE_MAX_AGE_SECONDS).contains(&age) {
        return Err(InstallError::BadState);
    }
    match parts.nth(1) {
        Some("L") => Ok(UserType::Location),
        Some("C") => Ok(UserType::Company),
        _ => Err(InstallError::BadState),
    }
}

/// The link that installs the app with `scopes`.
pub fn url(
    app: &OAuthApp,
    redirect_uri: Option<&str>,
    user_type: UserType,
    scopes: &[&str],
    now: DateTime<Utc>,
) -> String {
    // A constant, tested to parse.
    #[allow(clippy::expect_used)]
    let mut url = reqwest::Url::parse(AUTHORIZE_URL).expect("a valid constant URL");
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &app.client_id)
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", &state(app, user_type, now));
        if let Some(redirect) = redirect_uri {
            query.append_pair("redirect_uri", redirect);
        }
    }
    url.into()
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
        let state = param("state").ok_or(InstallError::Missing("state"))?;
        let app = read_app(&self.secrets, &self.app_secret).await?;
        let user_type = check_state(&app, state, now)?;
        let code = param("code").ok_or(InstallError::Missing("code"))?;
        self.claim(state).await?;
        let oauth = OAuthClient::new(&self.base_url, app, self.timeout)
            .map_err(|e| InstallError::Token(OAuthError::Unavailable(std::sync::Arc::new(e))))?;
        let answer = oauth
            .exchange_code(code, user_type.name(), self.redirect_uri.as_deref())
            .await?;
        let approved = answer.approved_locations.clone();
        let mut set = TokenSet::from_response(answer, now);
        set.installed_at = Some(now);
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

/// The page the installing user sees.
pub fn page(outcome: &Result<Installed, InstallError>) -> String {
    let (title, text) = match outcome {
        Ok(Installed::Location { location_id }) => (
            "Connected",
            format!("ghl-capi is connected to location {location_id}. You can close this window."),
        ),
        Ok(Installed::Company { locations, .. }) => (
            "Connected",
            format!(
                "ghl-capi is connected to your agency and {} location(s). You can close this window.",
                locations.len()
            ),
        ),
        Err(e) => (
            "Not connected",
            format!("The install did not complete: {e}"),
        ),
    };
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>ghl-capi: {title}</title></head>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\"><h1>{title}</h1><p>{}</p></body></html>",
        escape(&text)
    )
}
