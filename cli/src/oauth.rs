//! `ghl-capi oauth url`: the link that installs the marketplace app.

use std::path::PathBuf;

use ghl_capi::ghl::install::{UserType, scopes, url as install_url};
use ghl_capi::ghl::oauth::OAuthApp;
use ghl_capi::mapping::Mapping;

use crate::Outcome;

#[derive(Debug, clap::Args)]
pub struct UrlArgs {
    /// The app's client id.
    #[arg(long, env = "GHL_CLIENT_ID")]
    client_id: String,
    /// The app's client secret: it signs the link's `state`, which the callback
    /// checks (the deployed stack must hold the same secret).
    #[arg(long, env = "GHL_CLIENT_SECRET", hide_env_values = true)]
    client_secret: String,
    /// The callback URL registered with the app (the stack's `/oauth/callback`).
    #[arg(long, env = "OAUTH_REDIRECT_URI")]
    redirect_uri: Option<String>,
    /// An agency-wide install (tokens for the agency and each approved location).
    #[arg(long)]
    company: bool,
    /// The mapping whose triggers decide the scopes; the built-in one without it.
    #[arg(long, env = "MAPPING_FILE")]
    mapping: Option<PathBuf>,
}

pub fn url(args: &UrlArgs) -> anyhow::Result<Outcome> {
    let mapping = match &args.mapping {
        Some(path) => Mapping::load(path)?,
        None => Mapping::builtin(),
    };
    let user_type = if args.company {
        UserType::Company
    } else {
        UserType::Location
    };
    let app = OAuthApp {
        client_id: args.client_id.clone(),
        client_secret: args.client_secret.clone(),
    };
    let scopes = scopes(mapping.trigger_names(), mapping.wants(), user_type);
    let link = install_url(
        &app,
        args.redirect_uri.as_deref(),
        user_type,
        &scopes,
        chrono::Utc::now(),
    );
    out!("{link}")?;
    eprintln!("scopes: {} (valid for an hour)", scopes.join(" "));
    Ok(Outcome::Done)
}
