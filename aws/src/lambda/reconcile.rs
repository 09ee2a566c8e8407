//! The scheduled reconciliation: every connected location (a token set under the
//! prefix, or a location an agency install left to mint) is reconciled in turn
//! ([`ghl_capi::pull::reconcile`]), its changes no webhook delivered queued for
//! enrichment. Locations are taken oldest run first, so a run cut short by the
//! function's deadline leaves the rest to the next, which starts with them.
//!
//! The same function takes the connect queue's messages ([`Connected`]): an
//! install announces each location it connects, and its first run, the baseline,
//! is taken then rather than at the next scheduled run. Its seeds are counted by
//! the function, not by the queue: while a run holds the function's one slot, the
//! queue's polls are throttled, and each counts a receive, so the queue allows
//! many and the announcement waits. A seed started [`SEED_TRIES`] times and never
//! finished (the function's time ran out each time) goes to the connect
//! dead-letter queue, for a person to seed from a machine.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use chrono::Utc;
use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::install::Connected;
use ghl_capi::ports::state::StateStore;
use ghl_capi::pull::reconcile::{ReconcileError, ReconcileSettings, locations_in_turn, reconcile};
use ghl_capi::settings::ReconcileFnSettings;

use ghl_capi::capi::CapiClient;
use ghl_capi::dispatch::replace::ReplacePolicy;
use ghl_capi::dispatch::tokens::MappingTokens;
use ghl_capi::mapping::live::LiveMapping;
use ghl_capi::pull::audience_mirror::mirror_due;

use super::{BoxError, Tokens, ghl_client, live_mapping, secrets_manager};
use crate::dynamo::DynamoState;
use crate::mappings::S3Mappings;
use crate::secrets::SecretsManager;
use crate::sqs::SqsQueue;

/// Stop starting locations this long before the function's deadline.
const MARGIN: Duration = Duration::from_secs(60);
/// How often an announced location's seed may start before it waits for a person.
pub const SEED_TRIES: u32 = 3;
/// How long a location's seed attempts are counted.
const TRIES_KEPT: Duration = Duration::from_secs(3 * 24 * 3600);

/// The reconciliation function over its AWS adapters.
#[derive(Debug)]
pub struct Reconciliation {
    pub ghl: GhlClient<Tokens>,
    pub state: DynamoState,
    pub enrich: SqsQueue,
    pub prefix: String,
    /// How it lists; opportunities too while the running mapping reads them.
    pub settings: ReconcileSettings,
    /// Where announcements whose seed never finished wait.
    pub connect_dead: Option<SqsQueue>,
    /// The mapping: the audiences mirrored on the schedule.
    pub mapping: LiveMapping<S3Mappings>,
    /// The Graph API audiences are replaced through.
    pub capi: CapiClient<MappingTokens<SecretsManager>>,
}

impl Reconciliation {
    pub async fn new(settings: ReconcileFnSettings, sdk: &SdkConfig) -> Result<Self, BoxError> {
        let mapping = live_mapping(settings.mapping, sdk).await?;
        Ok(Reconciliation {
            ghl: ghl_client(sdk, &settings.ghl, &settings.state_table)?,
            state: DynamoState::new(aws_sdk_dynamodb::Client::new(sdk), settings.state_table),
            enrich: SqsQueue::new(aws_sdk_sqs::Client::new(sdk), settings.enrich_queue_url),
            prefix: settings.ghl.token_prefix,
            settings: settings.reconcile,
            connect_dead: settings
                .connect_dead_letter_queue_url
                .map(|url| SqsQueue::new(aws_sdk_sqs::Client::new(sdk), url)),
            capi: {
                let tokens = MappingTokens::new(&mapping.running(), secrets_manager(sdk));
                let timeout = settings.ghl.http_timeout;
                CapiClient::new(
                    &settings.capi_base_url,
                    &settings.capi_version,
                    tokens,
                    timeout,
                )?
            },
            mapping,
        })
    }

    /// The connected locations, in the order a run takes them
    /// ([`locations_in_turn`]).
    pub async fn locations(&self) -> Result<Vec<String>, BoxError> {
        let names = self.ghl.tokens().secrets().names(&self.prefix).await?;
        Ok(locations_in_turn(&names, &self.prefix, &self.state).await?)
    }

    /// One run, until `deadline` nears: a summary, and an error (so the function's
    /// error alarm fires) when any location failed.
    pub async fn handle(
        &self,
        deadline: std::time::Instant,
    ) -> Result<serde_json::Value, BoxError> {
        let locations = self.locations().await?;
        let (mut done, mut failed, mut waited, mut changed) = (0, 0, 0, 0);
        for location in &locations {
            if near(deadline) {
                tracing::warn!(
                    left = locations.len() - done - failed,
                    "the function's deadline nears: the other locations wait for the next run"
                );
                break;
            }
            match self.reconcile(location).await {
                Ok(found) => {
                    done += 1;
                    changed += found;
                }
                Err(e) if e.waits_for_budget() => waited += 1,
                Err(_) => failed += 1,
            }
        }
        let mirrored = self.mirror(&locations, deadline).await;
        crate::metrics::flush();
        if failed > 0 {
            return Err(format!(
                "{failed} of {} locations could not be reconciled",
                locations.len()
            )
            .into());
        }
        Ok(
            serde_json::json!({"locations": locations.len(), "reconciled": done,
            "waited": waited, "changed": changed, "mirrored": mirrored}),
        )
    }

    /// The audiences whose scheduled mirror is due, mirrored while the deadline
    /// allows (Meta's matching followed no longer: dispatch's `/users` requests
    /// it refuses meanwhile are held and sent again); the names of those mirrored.
    /// A failure is logged, counted and alarmed by the library, and tried again at
    /// the next run.
    async fn mirror(&self, locations: &[String], deadline: std::time::Instant) -> Vec<String> {
        let mapping = self.mapping.current().await;
        let audiences = &mapping.audiences;
        if near(deadline) || audiences.iter().all(|a| a.mirror_every.is_none()) {
            return Vec::new();
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let defaults = ReplacePolicy::default();
        let policy = ReplacePolicy {
            poll_for: defaults.poll_for.min(left.saturating_sub(MARGIN * 2)),
            ..defaults
        };
        self.capi.tokens().follow(&mapping);
        let done = mirror_due(
            &self.ghl,
            &self.state,
            &self.capi,
            audiences,
            locations,
            Utc::now(),
            policy,
        )
        .await;
        done.into_iter()
            .filter(|(_, outcome)| outcome.is_ok())
            .map(|(name, _)| name)
            .collect()
    }

    /// One location's run: the changes it queued, or why it stopped (logged, and a
    /// failure counted, by the library; the next run goes on from its watermark).
    /// A run that waits for GHL's budget is no failure: it fires no alarm.
    async fn reconcile(&self, location: &str) -> Result<u64, ReconcileError> {
        let settings = ReconcileSettings {
            opportunities: self.mapping.current().await.reads_opportunities(),
            ..self.settings
        };
        let run = reconcile(
            &self.ghl,
            &self.state,
            &self.enrich,
            location,
            &settings,
            Utc::now(),
        );
        Box::pin(run).await.map(|run| run.changed)
    }

    /// The connect queue's messages: each announced location's run (its first,
    /// so its baseline) now. A failed run is not retried here, as the scheduled
    /// runs seed every location not yet seeded; only the messages the deadline
    /// left untouched come back.
    pub async fn connected(
        &self,
        event: &SqsEvent,
        deadline: std::time::Instant,
    ) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for message in &event.records {
            let id = message.message_id.clone().unwrap_or_default();
            if near(deadline) {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
                continue;
            }
            let body = message.body.as_deref().unwrap_or_default();
            match serde_json::from_str::<Connected>(body) {
                Ok(Connected { connected }) => {
                    if !self.seed(&connected, body).await {
                        let mut failure = BatchItemFailure::default();
                        failure.item_identifier = id;
                        response.batch_item_failures.push(failure);
                    }
                }
                Err(e) => tracing::warn!(
                    message_id = id,
                    error = %e,
                    "not an install's announcement: ignored (the scheduled runs cover every location)"
                ),
            }
        }
        crate::metrics::flush();
        response
    }

    /// An announced location's first run, unless it is seeded already or its seed
    /// started [`SEED_TRIES`] times before (then the announcement goes to the
    /// connect dead-letter queue); whether the message is done with (`false`: the
    /// state store or that queue failed, and it comes back).
    async fn seed(&self, location: &str, announcement: &str) -> bool {
        match ghl_capi::pull::seed::seeded(&self.state, location).await {
            Ok(Some(_)) => return true,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(location_id = location, error = %e, "cannot read whether the location is seeded");
                return false;
            }
        }
        let key = format!("seeding#{location}");
        let tries = match self.state.record(&key).await {
            Ok(text) => text.and_then(|t| t.parse::<u32>().ok()).unwrap_or(0),
            Err(e) => {
                tracing::warn!(location_id = location, error = %e, "cannot read the seed's attempts");
                return false;
            }
        };
        if tries >= SEED_TRIES {
            return self.gave_up(location, announcement, tries).await;
        }
        if let Err(e) = self
            .state
            .set_record(&key, &(tries + 1).to_string(), TRIES_KEPT)
            .await
        {
            tracing::warn!(location_id = location, error = %e, "cannot count the seed's attempt");
            return false;
        }
        tracing::info!(
            location_id = location,
            attempt = tries + 1,
            "a location connected: its first run"
        );
        // Its outcome is logged (a failure counted) by the library; a seed left
        // unfinished is taken by the scheduled runs.
        let _ = self.reconcile(location).await;
        true
    }

    /// The announcement of a seed that never finished, to the connect dead-letter
    /// queue (its alarm asks a person to seed from a machine).
    async fn gave_up(&self, location: &str, announcement: &str, tries: u32) -> bool {
        tracing::error!(
            location_id = location,
            tries,
            alert = "seed_not_taken",
            "a location's seed started {tries} times and never finished: seed it from a machine (ghl-capi reconcile --seed --aws)"
        );
        let Some(dead) = &self.connect_dead else {
            return true;
        };
        let message = ghl_capi::ports::queue::Outgoing::new(announcement.to_owned());
        match ghl_capi::ports::queue::Queue::send(dead, message).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(location_id = location, error = %e, "cannot park the announcement");
                false
            }
        }
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
                let deadline = std::time::Instant::now() + left;
                // The schedule's events carry no records; the connect queue's do.
                if event.payload.get("Records").is_some() {
                    let records: SqsEvent = serde_json::from_value(event.payload)?;
                    let answer = this.connected(&records, deadline).await;
                    return Ok::<_, BoxError>(serde_json::to_value(answer)?);
                }
                Box::pin(this.handle(deadline)).await
            },
        ))
        .await
    }
}

/// Whether too little of the function's time is left to start a location.
fn near(deadline: std::time::Instant) -> bool {
    deadline.saturating_duration_since(std::time::Instant::now()) < MARGIN
}
