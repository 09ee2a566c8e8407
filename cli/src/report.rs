//! `ghl-capi report`: per location, week and stage, the contacts that reached it,
//! the events Meta took, the share with a lead id, an e-mail and a phone, and the
//! average identifier coverage score; as text or CSV. From the local store, or with
//! --aws from the stack's state table.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use ghl_capi::ports::state::StateStore;
use ghl_capi::quality::report;
use ghl_capi_aws::dynamo::DynamoState;
use ghl_capi_local::ports::LocalState;
use ghl_capi_local::store::Store;

use crate::Outcome;
use crate::serve::DEFAULT_DATA_DIR;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// From when: a duration back (`8w`, `30d`), or a day (2026-11-01) or time
    /// (RFC 3339); whole weeks from that day's Monday.
    #[arg(long, default_value = "4w", value_parser = crate::trace::since)]
    since: DateTime<Utc>,
    /// Only these locations (repeat it); every location with figures when left out.
    #[arg(long = "location")]
    locations: Vec<String>,
    /// Print CSV (one line a location, week and stage) instead of text.
    #[arg(long)]
    csv: bool,
    /// The local store's directory (as given to `serve`).
    #[arg(long, env = "GHL_CAPI_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Read the deployed stack's state table instead (with the usual `AWS_*`
    /// settings).
    #[arg(long, requires = "state_table")]
    aws: bool,
    /// With --aws: the stack's state table.
    #[arg(long, env = "STATE_TABLE")]
    state_table: Option<String>,
}

pub fn run(args: &Args) -> anyhow::Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let lines = runtime.block_on(async {
        if args.aws {
            let sdk = ghl_capi_aws::config::sdk_config().await;
            let table = args.state_table.clone().unwrap_or_default();
            let state = DynamoState::new(aws_sdk_dynamodb::Client::new(&sdk), table);
            lines(args, &state).await
        } else {
            let path = args.data_dir.join("store.db");
            anyhow::ensure!(
                path.exists(),
                "no local store at {}; give --data-dir as `serve` has it, or --aws",
                path.display()
            );
            lines(args, &LocalState(Store::open(&path)?)).await
        }
    })?;
    if args.csv {
        out_text!(report::csv(&lines))?;
    } else {
        out_text!(report::text(&lines))?;
    }
    Ok(Outcome::Done)
}

async fn lines(args: &Args, state: &impl StateStore) -> anyhow::Result<Vec<report::Line>> {
    let locations = if args.locations.is_empty() {
        report::locations(state).await?
    } else {
        args.locations.clone()
    };
    let (since, today) = (args.since.date_naive(), Utc::now().date_naive());
    Ok(report::read(state, &locations, since, today).await?)
}
