//! The enrichment function: queued jobs in, GHL reads, dispatch jobs and dead
//! letters out.

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use chrono::Utc;
use ghl_capi::enrich::consumer::EnrichConsumer;
use ghl_capi::ghl::client::GhlClient;
use ghl_capi::hold::HoldPolicy;
use ghl_capi::mapping::live::LiveMapping;
use ghl_capi::settings::EnrichSettings;

use super::batch::{records, run_sqs, settle};
use super::{BoxError, Tokens, ghl_client, live_mapping};
use crate::dynamo::DynamoState;
use crate::mappings::S3Mappings;
use crate::sqs::SqsQueue;

/// The enrichment function over its AWS adapters.
#[derive(Debug)]
pub struct Enrichment {
    pub mapping: LiveMapping<S3Mappings>,
    pub ghl: GhlClient<Tokens>,
    pub state: DynamoState,
    /// The enrichment queue itself, to delay retries on.
    pub source: SqsQueue,
    pub dispatch: SqsQueue,
    pub dead: SqsQueue,
    pub hold: HoldPolicy,
    /// The enrichment queue's receive limit.
    pub max_receives: u32,
}

impl Enrichment {
    pub async fn new(settings: EnrichSettings, sdk: &SdkConfig) -> Result<Self, BoxError> {
        let sqs = aws_sdk_sqs::Client::new(sdk);
        Ok(Enrichment {
            ghl: ghl_client(sdk, &settings.ghl, &settings.state_table)?,
            mapping: live_mapping(settings.mapping, sdk).await?,
            state: DynamoState::new(aws_sdk_dynamodb::Client::new(sdk), settings.state_table),
            source: SqsQueue::new(sqs.clone(), settings.enrich_queue_url),
            dispatch: SqsQueue::new(sqs.clone(), settings.dispatch_queue_url),
            dead: SqsQueue::new(sqs, settings.dead_letter_queue_url),
            hold: settings.hold,
            max_receives: settings.max_receives,
        })
    }

    /// Handles one batch from the enrichment queue.
    pub async fn handle(&self, event: &SqsEvent) -> SqsBatchResponse {
        let records = records(event);
        let mapping = self.mapping.current().await;
        let consumer = EnrichConsumer {
            mapping: &mapping,
            ghl: &self.ghl,
            state: &self.state,
            source: &self.source,
            dispatch: &self.dispatch,
            dead: &self.dead,
            policy: self.hold,
            max_receives: self.max_receives,
        };
        let failed = consumer.handle(&records, Utc::now()).await;
        settle("enrichment", &self.source, event, failed).await
    }

    pub async fn run(self) -> Result<(), lambda_runtime::Error> {
        let this = &self;
        run_sqs(|event| async move { this.handle(&event).await }).await
    }
}
