//! `ghl-capi verify`: run the checks of `ghl_capi::verify` with the credentials
//! where they live: the environment (local mode), or AWS (`--aws`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use ghl_capi::capi::CapiClient;
use ghl_capi::capi::client::{
    DEFAULT_API_VERSION as DEFAULT_GRAPH_VERSION, DEFAULT_BASE_URL as GRAPH_DEFAULT_BASE_URL,
};
use ghl_capi::dispatch::tokens::{audience_tokens, pixel_tokens};
use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::oauth::TokenSet;
use ghl_capi::ghl::tokens::FixedTokens;
use ghl_capi::ghl::wire::{DEFAULT_BASE_URL, LocationToken};
use ghl_capi::mapping::Mapping;
use ghl_capi::ops::credentials::catching_up as location_status;
use ghl_capi::ops::credentials::{
    Finding, ghl_location, location_names, meta_audience, meta_pixel, table,
};
use ghl_capi::ops::quality;
use ghl_capi::ports::secrets::{EnvSecrets, SecretError, SecretStore, VersionedSecrets};
use ghl_capi::ports::state::StateStore;
use ghl_capi::quality::readiness::Asked;
use ghl_capi::settings::GHL_TOKEN_DEFAULT_PREFIX;
use ghl_capi_aws::dynamo::DynamoState;
use ghl_capi_local::ports::LocalState;
use ghl_capi_local::serve::GHL_TOKEN_PREFIX;
use ghl_capi_local::store::Store;

use crate::Outcome;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The mapping whose pixels and rules are checked.
    #[arg(long, env = "MAPPING_FILE")]
    mapping: PathBuf,
    /// A GHL location to check (besides those the mapping's pixels name).
    #[arg(long = "location")]
    locations: Vec<String>,
    /// Read credentials from the deployed stack (Secrets Manager, with the usual
    /// `AWS_*` settings) instead of the environment.
    #[arg(long)]
    aws: bool,
    /// With --aws: where the GHL token sets are kept.
    #[arg(long, env = "GHL_TOKEN_SECRET_PREFIX", default_value = GHL_TOKEN_DEFAULT_PREFIX)]
    token_prefix: String,
    #[arg(long, env = "GHL_API_BASE_URL", default_value = DEFAULT_BASE_URL)]
    ghl_api_base_url: String,
    #[arg(long, env = "GRAPH_API_BASE_URL", default_value = GRAPH_DEFAULT_BASE_URL)]
    graph_api_base_url: String,
    #[arg(long, env = "GRAPH_API_VERSION", default_value = DEFAULT_GRAPH_VERSION)]
    graph_api_version: String,
    /// The local store's directory (as given to `serve`): also show each
    /// location's baseline and last reconciliation.
    #[arg(long, env = "GHL_CAPI_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// With --aws: the stack's state table, for the same.
    #[arg(long, env = "STATE_TABLE")]
    state_table: Option<String>,
    /// With the state store (--data-dir, or --aws with --state-table): each
    /// pixel's match quality over at least its last N events (whole days, at most
    /// 28 of them).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    last: u64,
    /// With the state store: check each pixel against Meta's Conversion Leads
    /// requirements, from the pipeline's own record of the last 30 days; a
    /// requirement not met fails the run.
    #[arg(long)]
    readiness: bool,
    /// With --readiness: only this pixel (as the mapping names it).
    #[arg(long, requires = "readiness")]
    pixel: Option<String>,
    /// With --readiness: the stage to optimise for (an event name); the stage with
    /// the fewest events when not given.
    #[arg(long, requires = "readiness", value_name = "EVENT")]
    target: Option<String>,
    /// With --readiness: the leads Meta counted in the last 30 days (Ads Manager),
    /// to judge lead coverage.
    #[arg(long, requires = "readiness", value_name = "N")]
    meta_leads: Option<u64>,
}

const TIMEOUT: Duration = Duration::from_secs(15);

pub fn run(args: &Args) -> anyhow::Result<Outcome> {
    let mapping = Mapping::load(&args.mapping)?;
    anyhow::ensure!(
        !args.readiness || store_named(args),
        "--readiness reads the pipeline's record: give --data-dir (or --aws with --state-table)"
    );
    if let Some(name) = &args.pixel {
        anyhow::ensure!(
            mapping.pixels.iter().any(|p| p.name == *name),
            "the mapping has no pixel named {name}"
        );
    }
    let mut locations: BTreeSet<String> = args.locations.iter().cloned().collect();
    locations.extend(
        mapping
            .pixels
            .iter()
            .flat_map(|p| p.locations.iter().cloned()),
    );
    anyhow::ensure!(
        !locations.is_empty() || !mapping.pixels.is_empty() || !mapping.audiences.is_empty(),
        "nothing to verify: give --location, or a mapping with pixels or audiences"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (findings, figures) = runtime.block_on(async {
        if args.aws {
            let sdk = ghl_capi_aws::config::sdk_config().await;
            let secrets = ghl_capi_aws::secrets::SecretsManager::new(
                aws_sdk_secretsmanager::Client::new(&sdk),
                Duration::from_secs(60),
            );
            check(args, &mapping, &locations, &secrets, |location| {
                let name = format!("{}{location}", args.token_prefix);
                let secrets = &secrets;
                async move {
                    let set = secrets.current(&name).await.ok().flatten()?;
                    TokenSet::parse(set.value.expose())
                }
            })
            .await
        } else {
            check(args, &mapping, &locations, &EnvSecrets, |location| {
                let token = std::env::var(format!("{GHL_TOKEN_PREFIX}{location}")).ok();
                async move { token.as_deref().and_then(TokenSet::parse) }
            })
            .await
        }
    })?;
    let mut findings = findings;
    let (caught_up, quality, ready) =
        runtime.block_on(from_state(args, &mapping, &locations, &figures))?;
    findings.extend(caught_up);
    out_text!(table(&findings))?;
    if !quality.is_empty() {
        out_text!(quality)?;
    }
    let unrecovered = mapping.unrecovered_triggers();
    if !unrecovered.is_empty() {
        let names: Vec<&str> = unrecovered.iter().map(|t| t.name()).collect();
        out!(
            "note: rules on {} come from GHL's webhooks only: reconciliation's polling cannot \
             recover one GHL never delivers (it recovers contacts created, tags, and \
             opportunities created, won or lost, or moved); watch MissedChangesAlarm and \
             GHL's webhook log",
            names.join(", ")
        )?;
    }
    if findings.iter().all(|f| f.ok) && ready {
        Ok(Outcome::Done)
    } else {
        Ok(Outcome::Failed)
    }
}

/// What the state store tells, where it was named: each location's baseline and
/// last reconciliation, and each pixel's match quality.
async fn from_state(
    args: &Args,
    mapping: &Mapping,
    locations: &BTreeSet<String>,
    figures: &MetaFigures,
) -> anyhow::Result<(Vec<Finding>, String, bool)> {
    if args.aws {
        let Some(table) = &args.state_table else {
            return Ok((Vec::new(), String::new(), true));
        };
        let sdk = ghl_capi_aws::config::sdk_config().await;
        let state = DynamoState::new(aws_sdk_dynamodb::Client::new(&sdk), table.clone());
        told(args, mapping, locations, &state, figures).await
    } else if let Some(dir) = &args.data_dir {
        let path = dir.join("store.db");
        anyhow::ensure!(path.exists(), "no local store at {}", path.display());
        let state = LocalState(Store::open(&path)?);
        told(args, mapping, locations, &state, figures).await
    } else {
        Ok((Vec::new(), String::new(), true))
    }
}

async fn told(
    args: &Args,
    mapping: &Mapping,
    locations: &BTreeSet<String>,
    state: &impl StateStore,
    figures: &MetaFigures,
) -> anyhow::Result<(Vec<Finding>, String, bool)> {
    let mut findings = Vec::new();
    for location in locations {
        findings.push(location_status(state, location).await);
    }
    if mapping.pixels.is_empty() {
        return Ok((findings, String::new(), true));
    }
    let today = chrono::Utc::now().date_naive();
    let mut text = format!(
        "\nmatch quality (identifier coverage, 0-10, of at least the last {} events Meta took):\n",
        args.last
    );
    for pixel in &mapping.pixels {
        let subject = format!("{} ({})", pixel.name, pixel.dataset_id);
        match quality::latest(state, &pixel.dataset_id, args.last, today).await {
            Ok(latest) => text.push_str(&quality::ours(&subject, &latest)),
            Err(e) => text.push_str(&format!(
                "  {subject}: the state store could not be read: {}\n",
                ghl_capi::error::chain(&e)
            )),
        }
        text.push_str(figures.get(&pixel.dataset_id).map_or("", String::as_str));
    }
    let mut ready = true;
    if args.readiness {
        let pixels = mapping
            .pixels
            .iter()
            .filter(|p| args.pixel.as_ref().is_none_or(|name| *name == p.name));
        for pixel in pixels {
            let asked = Asked {
                target: args.target.as_deref(),
                meta_leads: args.meta_leads,
                test_pixel: pixel.test_event_code.is_some(),
            };
            let (checks, met) = quality::readiness(state, &pixel.dataset_id, today, &asked).await?;
            let subject = format!("{} ({})", pixel.name, pixel.dataset_id);
            text.push_str(&quality::readiness_text(&subject, &checks));
            ready &= met;
        }
    }
    Ok((findings, text, ready))
}

/// Runs every check; `token_set` finds a location's stored tokens.
async fn check<S, F, Fut>(
    args: &Args,
    mapping: &Mapping,
    locations: &BTreeSet<String>,
    secrets: &S,
    token_set: F,
) -> anyhow::Result<(Vec<Finding>, MetaFigures)>
where
    S: SecretStore,
    F: Fn(&str) -> Fut,
    Fut: std::future::Future<Output = Option<TokenSet>>,
{
    let mut findings = Vec::new();
    for location in locations {
        let Some(set) = token_set(location).await else {
            findings.push(Finding {
                check: "ghl",
                subject: location.clone(),
                ok: false,
                detail: "no GHL token is stored for this location".into(),
                fix: if args.aws {
                    "install the app (ghl-capi oauth url) or store a Private Integration token in the location's secret".into()
                } else {
                    format!("set {GHL_TOKEN_PREFIX}{location} to a Private Integration token")
                },
            });
            continue;
        };
        if let Some(reason) = set.needs_reinstall.as_ref().or(set.refresh_lost.as_ref()) {
            findings.push(Finding {
                check: "ghl",
                subject: location.clone(),
                ok: false,
                detail: reason.clone(),
                fix: "install the app again (ghl-capi oauth url)".into(),
            });
            continue;
        }
        // Checked as it is stored: verify never refreshes (a refresh belongs to the
        // functions, under their lease).
        let tokens =
            FixedTokens([(location.clone(), LocationToken(set.access_token.clone()))].into());
        let ghl = GhlClient::new(&args.ghl_api_base_url, tokens, TIMEOUT)?;
        findings.push(ghl_location(&ghl, mapping, location, set.scope.as_deref()).await);
        findings.extend(location_names(&ghl, mapping, location).await);
    }
    let graph = |tokens| {
        CapiClient::new(
            &args.graph_api_base_url,
            &args.graph_api_version,
            tokens,
            TIMEOUT,
        )
    };
    // A token that cannot be read: the finding says where it should be.
    let unread = |subject: String, why: &SecretError, fix: &str| Finding {
        check: "meta",
        subject,
        ok: false,
        detail: why.to_string(),
        fix: fix.to_owned(),
    };
    let (tokens, missing) = pixel_tokens(mapping, secrets).await;
    let capi = graph(tokens)?;
    // Meta's own figures go beside the pipeline's, which only the state store has.
    let mut figures = MetaFigures::new();
    if store_named(args) {
        for pixel in &mapping.pixels {
            let told = quality::meta(&capi, &pixel.dataset_id).await;
            figures.insert(pixel.dataset_id.clone(), told);
        }
    }
    for pixel in &mapping.pixels {
        if let Some((_, why)) = missing.iter().find(|(name, _)| name == &pixel.name) {
            let subject = format!("{} ({})", pixel.name, pixel.dataset_id);
            let fix = "store the pixel's Conversions API access token where the mapping says";
            findings.push(unread(subject, why, fix));
            continue;
        }
        findings.push(
            meta_pixel(
                &capi,
                &pixel.name,
                &pixel.dataset_id,
                pixel.test_event_code.as_deref(),
                chrono::Utc::now(),
            )
            .await,
        );
    }
    let (tokens, missing) = audience_tokens(mapping, secrets).await;
    let capi = graph(tokens)?;
    for audience in &mapping.audiences {
        if let Some((_, why)) = missing.iter().find(|(name, _)| name == &audience.name) {
            let subject = format!("{} (audience {})", audience.name, audience.audience_id);
            let fix = "store the audience's token (ads_management on its ad account) where the mapping says";
            findings.push(unread(subject, why, fix));
            continue;
        }
        findings.push(meta_audience(&capi, &audience.name, &audience.audience_id).await);
    }
    Ok((findings, figures))
}

/// Meta's Dataset Quality figures for each pixel, as lines, by dataset.
type MetaFigures = std::collections::HashMap<String, String>;

/// Whether the state store was named (`--data-dir`, or `--aws` with
/// `--state-table`): it holds the pipeline's own record.
fn store_named(args: &Args) -> bool {
    if args.aws {
        args.state_table.is_some()
    } else {
        args.data_dir.is_some()
    }
}
