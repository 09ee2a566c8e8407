//! The install link we make (`ghl-capi oauth url`): the scopes it asks for, and
//! its `state`, `{issued}.{nonce}.{L|C}.{mac}`, the MAC an HMAC-SHA256 under the
//! app's client secret, accepted for an hour.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::{InstallError, UserType};
use crate::ghl::oauth::OAuthApp;

/// Where GHL asks the user to choose the location(s) to install into.
pub const AUTHORIZE_URL: &str = "https://marketplace.gohighlevel.com/v2/oauth/chooselocation";
/// How long an install link stays valid.
pub(super) const STATE_MAX_AGE_SECONDS: i64 = 3600;

/// The read scopes behind a location's names (`reference/ghl-api.md` §8.4).
pub const NAMES_SCOPES: [&str; 3] = [
    "opportunities.readonly",
    "locations/customFields.readonly",
    "calendars.readonly",
];

/// What a mapping asks of GHL beyond reading contacts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wants {
    /// Its rules are written in the location's names.
    pub names: bool,
    /// A rule writes back into GHL (tags, fields, notes, tasks).
    pub writes: bool,
}

/// The scopes the app needs for rules on `triggers` (by their mapping names,
/// `opportunity.status_changed`, …): contacts always (every rule reads the contact,
/// its notes, tasks and appointments), the webhooks its triggers listen to, the
/// location's names when its rules are written in them, `contacts.write` when a
/// rule writes back, and, for an agency install, minting location tokens.
pub fn scopes<'a>(
    triggers: impl IntoIterator<Item = &'a str>,
    wants: Wants,
    user_type: UserType,
) -> Vec<&'static str> {
    let mut scopes = vec!["contacts.readonly"];
    if wants.writes {
        scopes.push("contacts.write");
    }
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
    if wants.names {
        for scope in NAMES_SCOPES {
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
    }
    if user_type == UserType::Company {
        scopes.extend(["oauth.readonly", "oauth.write"]);
    }
    scopes
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
