//! `ghl-capi reconcile --seed`: record each location's baseline (every contact's
//! tags), so the first webhook after an install fires its tag rules.

use chrono::Utc;
use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::tokens::FixedTokens;
use ghl_capi::ops::seed::{seed, seeded};
use ghl_capi::ports::state::StateStore;
use ghl_capi_local::ports::LocalState;

use crate::Outcome;
use crate::target::{Backend, Progress, Target};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// List every contact of each location once and record its tags as the
    /// baseline, sending nothing (contacts the pipeline has seen keep what their
    /// webhooks said).
    #[arg(long, required = true)]
    seed: bool,
    /// A GHL location to seed (repeatable).
    #[arg(long = "location", required = true)]
    locations: Vec<String>,
    #[command(flatten)]
    target: Target,
}

pub fn run(args: &Args) -> anyhow::Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let backend = args.target.backend().await?;
        let ghl = args.target.ghl(&backend, &args.locations).await?;
        match backend {
            Backend::Aws(sdk) => seed_all(args, &ghl, &args.target.dynamo(&sdk)).await,
            Backend::Local(store) => seed_all(args, &ghl, &LocalState(store)).await,
        }
    })
}

async fn seed_all(
    args: &Args,
    ghl: &GhlClient<FixedTokens>,
    state: &impl StateStore,
) -> anyhow::Result<Outcome> {
    for location in &args.locations {
        if let Some(before) = seeded(state, location).await? {
            out!(
                "location {location}: seeded before, at {} ({} contacts); again, for contacts new since",
                before.at.to_rfc3339(),
                before.listed
            )?;
        }
        let mut progress = Progress::new(&format!("seeding location {location}"));
        let done = seed(ghl, state, location, Utc::now(), &mut |n, total| {
            progress.listed(n, total);
        })
        .await?;
        progress.done();
        out!(
            "location {location}: seeded: {} contacts listed; {} baselines recorded, {} already known from webhooks",
            done.listed,
            done.recorded,
            done.known
        )?;
        if done.beyond > 0 {
            out!(
                "  note: {} contacts lie beyond GHL's search reach and were not listed; their first tag webhook records their tags",
                done.beyond
            )?;
        }
    }
    Ok(Outcome::Done)
}
