//! Each pixel's Conversions API credentials, and each audience's, read where the
//! mapping says: a secret (through the secret store) or an environment variable.
//! Each holds the access token alone, or `{"access_token": …, "app_secret": …}`.
//!
//! [`MappingTokens`] keeps what it read for a short while, so a token stored or
//! fixed while a function is warm reaches it within [`TOKEN_CACHE`]; after Meta
//! refused a token, the next request reads it anew (past the store's own cache).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::capi::{PixelToken, PixelTokens};
use crate::error::chain;
use crate::mapping::{Audience, Mapping, Pixel, TokenRef};
use crate::ports::secrets::{EnvSecrets, Secret, SecretError, SecretStore};

/// How long a pixel's credentials (or their absence) are kept before being read
/// again.
pub const TOKEN_CACHE: Duration = Duration::from_secs(60);

/// Whose credentials: a pixel's or an audience's, by its name and where its token
/// is kept.
#[derive(Debug, Clone)]
struct Holder {
    name: String,
    token: TokenRef,
}

impl From<&Pixel> for Holder {
    fn from(pixel: &Pixel) -> Self {
        Holder {
            name: pixel.name.clone(),
            token: pixel.access_token.clone(),
        }
    }
}

/// `holder`'s credentials, read from `store` (anew, past any cache, with `fresh`).
async fn read(
    holder: &Holder,
    store: &impl SecretStore,
    fresh: bool,
) -> Result<PixelToken, SecretError> {
    let secret = match (&holder.token, fresh) {
        (TokenRef::Secret(name), false) => store.get(name).await,
        (TokenRef::Secret(name), true) => store.fresh(name).await,
        (TokenRef::Env(var), _) => EnvSecrets.get(var).await,
    }?;
    credentials(holder, &secret)
}

fn credentials(holder: &Holder, secret: &Secret) -> Result<PixelToken, SecretError> {
    let access_token = secret
        .token()
        .ok_or_else(|| SecretError::unavailable(&holder.name, "it holds no access_token"))?;
    Ok(PixelToken {
        access_token: access_token.expose().to_owned(),
        app_secret: secret.field("app_secret").map(|a| a.expose().to_owned()),
    })
}

/// The credentials of each of the mapping's pixels, by dataset id, read once. A
/// pixel whose token cannot be read is left out and returned with why, so the
/// others still work (`ghl-capi verify`).
pub async fn pixel_tokens(
    mapping: &Mapping,
    store: &impl SecretStore,
) -> (HashMap<String, PixelToken>, Vec<(String, SecretError)>) {
    let pixels = mapping
        .pixels
        .iter()
        .map(|p| (p.dataset_id.clone(), Holder::from(p)));
    read_all(pixels, store).await
}

/// As [`pixel_tokens`], for the mapping's audiences, by audience id.
pub async fn audience_tokens(
    mapping: &Mapping,
    store: &impl SecretStore,
) -> (HashMap<String, PixelToken>, Vec<(String, SecretError)>) {
    read_all(mapping.audiences.iter().map(audience_holder), store).await
}

async fn read_all(
    holders: impl Iterator<Item = (String, Holder)>,
    store: &impl SecretStore,
) -> (HashMap<String, PixelToken>, Vec<(String, SecretError)>) {
    let mut tokens = HashMap::new();
    let mut missing = Vec::new();
    for (id, holder) in holders {
        match read(&holder, store, false).await {
            Ok(token) => {
                tokens.insert(id, token);
            }
            Err(e) => missing.push((holder.name, e)),
        }
    }
    (tokens, missing)
}

/// Whose credentials `mapping` names, by dataset or audience id.
fn holders(mapping: &Mapping) -> HashMap<String, Holder> {
    let pixels = mapping
        .pixels
        .iter()
        .map(|p| (p.dataset_id.clone(), Holder::from(p)));
    pixels
        .chain(mapping.audiences.iter().map(audience_holder))
        .collect()
}

fn audience_holder(audience: &Audience) -> (String, Holder) {
    let holder = Holder {
        name: audience.name.clone(),
        token: audience.access_token.clone(),
    };
    (audience.audience_id.clone(), holder)
}

/// What is known of one pixel's credentials.
struct Cached {
    read_at: Instant,
    token: Option<PixelToken>,
    /// Meta refused them: read past the store's cache next time.
    refused: bool,
    /// None are stored, and that has been said: not said again while it lasts.
    missing: bool,
}

/// The credentials of the mapping's pixels (by dataset id) and audiences (by
/// audience id), read when first needed and kept for [`TOKEN_CACHE`], read again
/// after Meta refused them.
pub struct MappingTokens<S> {
    /// By dataset or audience id, with the mapping version they were read from.
    holders: Mutex<(String, HashMap<String, Holder>)>,
    store: S,
    cache: Mutex<HashMap<String, Cached>>,
}

impl<S> std::fmt::Debug for MappingTokens<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappingTokens")
            .field("version", &self.holders().0)
            .finish_non_exhaustive()
    }
}

impl<S> MappingTokens<S> {
    fn holders(&self) -> std::sync::MutexGuard<'_, (String, HashMap<String, Holder>)> {
        self.holders
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<S: SecretStore> MappingTokens<S> {
    pub fn new(mapping: &Mapping, store: S) -> Self {
        MappingTokens {
            holders: Mutex::new((mapping.version.clone(), holders(mapping))),
            store,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Follows a new version of the mapping: its pixels' and audiences' tokens
    /// from now on. Those read stay cached (a token's place seldom changes with a
    /// version); one whose place did is read anew.
    pub fn follow(&self, mapping: &Mapping) {
        let mut held = self.holders();
        if held.0 == mapping.version {
            return;
        }
        let new = holders(mapping);
        let moved = |id: &String| match (held.1.get(id), new.get(id)) {
            (Some(old), Some(new)) => old.token != new.token,
            _ => true,
        };
        self.cache().retain(|id, _| !moved(id));
        *held = (mapping.version.clone(), new);
    }
}

impl<S: SecretStore> MappingTokens<S> {
    /// Whether `id` has credentials, read as [`PixelTokens::token`] reads them but
    /// saying nothing of their absence: for a caller that says it itself (`serve`
    /// naming its dry-run pixels), so it is said once.
    pub async fn configured(&self, id: &str) -> bool {
        self.look_up(id, false).await.is_some()
    }

    /// `id`'s credentials, from the cache while it is fresh. A secret that cannot
    /// be read is a warning; one that does not exist is information (a pixel may
    /// run dry on purpose), given once while it lasts, and with `tell` only.
    async fn look_up(&self, id: &str, tell: bool) -> Option<PixelToken> {
        let (refused, missing) = match self.cache().get(id) {
            Some(c) if !c.refused && c.read_at.elapsed() < TOKEN_CACHE => return c.token.clone(),
            Some(c) => (c.refused, c.missing),
            None => (false, false),
        };
        let holder = self.holders().1.get(id)?.clone();
        let read = read(&holder, &self.store, refused).await;
        match &read {
            Ok(_) => {}
            Err(e @ SecretError::Missing(_)) => {
                if tell && !missing {
                    tracing::info!(name = holder.name, error = %chain(e), "this pixel (or audience) has no Meta token stored");
                }
            }
            Err(e) => {
                tracing::warn!(name = holder.name, error = %chain(e), "cannot read this pixel's (or audience's) Meta token");
            }
        }
        let cached = Cached {
            read_at: Instant::now(),
            missing: matches!(read, Err(SecretError::Missing(_))),
            token: read.ok(),
            refused: false,
        };
        let token = cached.token.clone();
        self.cache().insert(id.to_owned(), cached);
        token
    }
}

impl<S: SecretStore> PixelTokens for MappingTokens<S> {
    async fn token(&self, dataset_id: &str) -> Option<PixelToken> {
        self.look_up(dataset_id, true).await
    }

    fn refused(&self, dataset_id: &str) {
        if let Some(cached) = self.cache().get_mut(dataset_id) {
            cached.refused = true;
        }
    }
}
