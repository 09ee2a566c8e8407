//! Each pixel's Conversions API credentials, read where the mapping says.

use std::collections::HashMap;

use crate::capi::PixelToken;
use crate::mapping::{Mapping, TokenRef};
use crate::ports::secrets::{EnvSecrets, SecretError, SecretStore};

/// The credentials of each of the mapping's pixels, by dataset id, read where the
/// mapping says: a secret (in `store`) or an environment variable. Each holds the
/// access token alone, or `{"access_token": …, "app_secret": …}`. A pixel whose
/// token cannot be read is left out and returned with why, so the others still work.
pub async fn pixel_tokens(
    mapping: &Mapping,
    store: &impl SecretStore,
) -> (HashMap<String, PixelToken>, Vec<(String, SecretError)>) {
    let mut tokens = HashMap::new();
    let mut missing = Vec::new();
    for pixel in &mapping.pixels {
        let secret = match &pixel.access_token {
            TokenRef::Secret(name) => store.get(name).await,
            TokenRef::Env(var) => EnvSecrets.get(var).await,
        };
        let token = secret.and_then(|s| {
            let access_token = s
                .token()
                .ok_or_else(|| SecretError::unavailable(&pixel.name, "it holds no access_token"))?;
            Ok(PixelToken {
                access_token: access_token.expose().to_owned(),
                app_secret: s.field("app_secret").map(|a| a.expose().to_owned()),
            })
        });
        match token {
            Ok(token) => {
                tokens.insert(pixel.dataset_id.clone(), token);
            }
            Err(e) => missing.push((pixel.name.clone(), e)),
        }
    }
    (tokens, missing)
}
