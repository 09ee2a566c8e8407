//! The scheduled reconciliation: every connected location (a token set under the
//! prefix, or a location an agency install left to mint) is reconciled in turn
//! ([`ghl_capi::ops::reconcile`]), its changes no webhook delivered queued for
//! enrichment. Locations are taken oldest run first, so a run cut short by the
//! function's deadline leaves the rest to the next, which starts with them.

use std::time::Duration;

use aws_config::SdkConfig;
use chrono::Utc;
use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::tokens::MINT_PREFIX;
use ghl_capi::ops::reconcile::{ReconcileSettings, last_run, reconcile};
use ghl_capi::ports::state::StateStore;
use ghl_capi::settings::ReconcileFnSettings;

use super::{BoxError, Tokens, ghl_client};
use crate::dynamo::DynamoState;
use crate::sqs::SqsQueue;

/// Stop starting locations this long before the function's deadline.
const MARGIN: Duration = Duration::from_secs(60);

/// The reconciliation function over its AWS adapters.
#[derive(Debug)]
pub struct Reconciliation {
    pub ghl: GhlClient<Tokens>,
    pub state: DynamoState,
    pub enrich: SqsQueue,
    pub prefix: String,
    pub settings: ReconcileSettings,
}

impl Reconciliation {
    pub async fn new(settings: ReconcileFnSettings, sdk: &SdkConfig) -> Result<Self, BoxError> {
        Ok(Reconciliation {
            ghl: ghl_client(sdk, &settings.ghl, &settings.state_table)?,
            state: DynamoState::new(aws_sdk_dynamodb::Client::new(sdk), settings.state_table),
            enrich: SqsQueue::new(aws_sdk_sqs::Client::new(sdk), settings.enrich_queue_url),
            prefix: settings.ghl.token_prefix,
            settings: settings.reconcile,
        })
    }

    /// The connected locations, the one reconciled longest ago first.
    pub async fn locations(&self) -> Result<Vec<String>, BoxError> {
        let company = format!("{}company-", self.prefix);
        let names = self.ghl.tokens().secrets().names(&self.prefix).await?;
        let mut locations: Vec<String> = names
            .iter()
            .filter(|name| !name.starts_with(&company))
            .filter_map(|name| name.strip_prefix(&self.prefix))
            .map(str::to_owned)
            .collect();
        for (key, _) in self.state.records_under(MINT_PREFIX).await? {
            locations.extend(key.strip_prefix(MINT_PREFIX).map(str::to_owned));
        }
        locations.sort();
        locations.dedup();
        let mut runs = Vec::with_capacity(locations.len());
        for location in locations {
            let last = last_run(&self.state, &location).await?.map(|r| r.at);
            runs.push((last, location));
        }
        runs.sort();
        Ok(runs.into_iter().map(|(_, location)| location).collect())
    }

    /// One run, until `deadline` nears: a summary, and an error (so the function's
    /// error alarm fires) when any location failed.
    pub async fn handle(
        &self,
        deadline: std::time::Instant,
    ) -> Result<serde_json::Value, BoxError> {
        let locations = self.locations().await?;
        let (mut done, mut failed, mut changed) = (0, 0, 0);
        for location in &locations {
            if deadline.saturating_duration_since(std::time::Instant::now()) < MARGIN {
                tracing::warn!(
                    left = locations.len() - done - failed,
                    "the function's deadline nears: the other locations wait for the next run"
                );
                break;
            }
            let run = reconcile(
                &self.ghl,
                &self.state,
                &self.enrich,
                location,
                &self.settings,
                Utc::now(),
            )
            .await;
            // Each run is logged by the library.
            match run {
                Ok(run) => {
                    done += 1;
                    changed += run.changed;
                }
                Err(_) => failed += 1,
            }
        }
        crate::metrics::flush();
        if failed > 0 {
            return Err(format!(
                "{failed} of {} locations could not be reconciled",
                locations.len()
            )
            .into());
        }
        Ok(
            serde_json::json!({"locations": locations.len(), "reconciled": done, "changed": changed}),
        )
    }

    pub async fn run(self) -> Result<(), lambda_runtime::Error> {
        let this = &self;
        lambda_runtime::run(lambda_runtime::service_fn(
            move |event: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
                let left = event
                    .context
                    .deadline()
                    .duration_since(std::time::SystemTime::now())
                    .unwrap_or_default();
                Box::pin(this.handle(std::time::Instant::now() + left)).await
            },
        ))
        .await
    }
}
