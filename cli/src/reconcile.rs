//! `ghl-capi reconcile`: one reconciliation run now for each location (the
//! changes since its watermark that no webhook delivered, queued for the
//! pipeline; a location's first run takes its baseline), as the schedule runs it;
//! or, with `--seed`, a fresh baseline (every contact's tags), sending nothing.

use chrono::Utc;
use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::tokens::FixedTokens;
use ghl_capi::mapping::Mapping;
use ghl_capi::ports::queue::Queue;
use ghl_capi::ports::state::StateStore;
use ghl_capi::pull::reconcile::{ReconcileSettings, Reconciled, last_run, reconcile};
use ghl_capi::pull::seed::{seed, seeded};
use ghl_capi::settings::Env;
use ghl_capi_local::ports::LocalState;

use crate::Outcome;
use crate::target::{Backend, Progress, Target};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// List every contact of each location once and record its tags as the
    /// baseline, sending nothing (contacts the pipeline has seen keep what their
    /// webhooks said).
    #[arg(long)]
    seed: bool,
    /// A GHL location (repeatable).
    #[arg(long = "location", required = true)]
    locations: Vec<String>,
    /// The mapping (as for `serve`): when its rules read opportunities, they are
    /// reconciled too.
    #[arg(long, env = "MAPPING_FILE", value_name = "FILE")]
    mapping: Option<std::path::PathBuf>,
    #[command(flatten)]
    target: Target,
}

pub fn run(args: &Args) -> anyhow::Result<Outcome> {
    let mut env = Env::new(|name| std::env::var(name).ok());
    let mut settings = env.reconcile();
    if let Some(path) = &args.mapping {
        settings.opportunities = Mapping::load(path)?.reads_opportunities();
    }
    let settings = env.finish(|| Some(settings))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let backend = args.target.backend().await?;
        let ghl = args.target.ghl(&backend, &args.locations).await?;
        let queue = if args.seed {
            None
        } else {
            Some(args.target.enrich_queue(&backend)?)
        };
        match backend {
            Backend::Aws(sdk) => {
                let state = args.target.dynamo(&sdk);
                match &queue {
                    Some(queue) => reconcile_all(args, &ghl, &state, queue, &settings).await,
                    None => seed_all(args, &ghl, &state, &settings).await,
                }
            }
            Backend::Local(store) => {
                let state = LocalState(store);
                match &queue {
                    Some(queue) => reconcile_all(args, &ghl, &state, queue, &settings).await,
                    None => seed_all(args, &ghl, &state, &settings).await,
                }
            }
        }
    })
}

async fn reconcile_all(
    args: &Args,
    ghl: &GhlClient<FixedTokens>,
    state: &impl StateStore,
    queue: &impl Queue,
    settings: &ReconcileSettings,
) -> anyhow::Result<Outcome> {
    for location in &args.locations {
        let before = last_run(state, location).await?;
        let run = reconcile(ghl, state, queue, location, settings, Utc::now()).await?;
        out!("location {location}: {}", summary(&run, before.as_ref()))?;
    }
    Ok(Outcome::Done)
}

/// What a run did, in a line.
fn summary(run: &Reconciled, before: Option<&Reconciled>) -> String {
    if let Some(seeded) = &run.seeded {
        return format!(
            "first run: baseline taken ({} contacts listed, {} baselines recorded; {} opportunities), nothing sent; changes are reconciled from {} on",
            seeded.listed,
            seeded.recorded,
            run.opportunities,
            run.watermark.to_rfc3339()
        );
    }
    let since = before.map_or_else(String::new, |b| {
        format!(" since {}", b.watermark.to_rfc3339())
    });
    let opportunities = match run.opportunities {
        0 => String::new(),
        n => format!(" and {n} opportunities"),
    };
    format!(
        "{} contacts listed as changed{since}{opportunities}; {} with changes no webhook delivered, queued for the pipeline; {} never seen, baselined",
        run.scanned, run.changed, run.baselined
    )
}

async fn seed_all(
    args: &Args,
    ghl: &GhlClient<FixedTokens>,
    state: &impl StateStore,
    settings: &ReconcileSettings,
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
        let pace = settings.pace();
        let done = seed(ghl, state, location, Utc::now(), pace, &mut |n, total| {
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
