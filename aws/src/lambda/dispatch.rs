//! The dispatch function: events in, Conversions API batches out, refusals
//! dead-lettered.

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use chrono::Utc;
use ghl_capi::capi::CapiClient;
use ghl_capi::dispatch::consumer::DispatchConsumer;
use ghl_capi::dispatch::tokens::MappingTokens;
use ghl_capi::hold::HoldPolicy;
use ghl_capi::mapping::live::LiveMapping;
use ghl_capi::settings::DispatchSettings;

use super::batch::{records, run_sqs, settle};
use super::{BoxError, live_mapping, secrets_manager};
use crate::dynamo::DynamoState;
use crate::mappings::S3Mappings;
use crate::secrets::SecretsManager;
use crate::sqs::SqsQueue;

/// The dispatch function over its AWS adapters.
#[derive(Debug)]
pub struct Dispatch {
    pub mapping: LiveMapping<S3Mappings>,
    pub capi: CapiClient<MappingTokens<SecretsManager>>,
    /// Where the pixels' breakers are kept.
    pub state: DynamoState,
    /// The dispatch queue itself: held events go back on it.
    pub source: SqsQueue,
    /// The enrichment queue, for write-backs into GHL.
    pub enrich: Option<SqsQueue>,
    pub dead: SqsQueue,
    pub hold: HoldPolicy,
}

impl Dispatch {
    /// Each pixel's token is read when first needed and again a minute later (or
    /// at once after Meta refused it), so one stored or fixed while the function is
    /// warm is used without a restart; until then the pixel's events are held.
    pub async fn new(settings: DispatchSettings, sdk: &SdkConfig) -> Result<Self, BoxError> {
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let mapping = live_mapping(settings.mapping, sdk).await?;
        let tokens = MappingTokens::new(&mapping.running(), secrets_manager(sdk));
        Ok(Dispatch {
            capi: CapiClient::new(
                &settings.capi_base_url,
                &settings.capi_version,
                tokens,
                settings.http_timeout,
            )?,
            mapping,
            state: DynamoState::new(aws_sdk_dynamodb::Client::new(sdk), settings.state_table),
            source: SqsQueue::new(sqs.clone(), settings.dispatch_queue_url),
            enrich: (settings.enrich_queue_url).map(|url| SqsQueue::new(sqs.clone(), url)),
            dead: SqsQueue::new(sqs, settings.dead_letter_queue_url),
            hold: settings.hold,
        })
    }

    /// Handles one batch from the dispatch queue.
    pub async fn handle(&self, event: &SqsEvent) -> SqsBatchResponse {
        let records = records(event);
        let mapping = self.mapping.current().await;
        self.capi.tokens().follow(&mapping);
        let consumer = DispatchConsumer {
            mapping: &mapping,
            capi: &self.capi,
            state: &self.state,
            source: &self.source,
            dead: &self.dead,
            enrich: self.enrich.as_ref(),
            policy: self.hold,
        };
        let failed = consumer.handle(&records, Utc::now()).await;
        settle("dispatch", &self.source, event, failed).await
    }

    pub async fn run(self) -> Result<(), lambda_runtime::Error> {
        let this = &self;
        run_sqs(|event| async move { this.handle(&event).await }).await
    }
}
