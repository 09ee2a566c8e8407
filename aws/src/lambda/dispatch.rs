//! The dispatch function: events in, Conversions API batches out, refusals
//! dead-lettered.

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use chrono::Utc;
use ghl_capi::capi::CapiClient;
use ghl_capi::dispatch::consumer::dispatch_records;
use ghl_capi::dispatch::tokens::pixel_tokens;
use ghl_capi::mapping::Mapping;
use ghl_capi::settings::DispatchSettings;

use super::batch::{records, run_sqs, settle};
use super::secrets_manager;
use crate::sqs::SqsQueue;

/// The dispatch function over its AWS adapters.
#[derive(Debug)]
pub struct Dispatch {
    pub mapping: Mapping,
    pub capi: CapiClient,
    pub source: SqsQueue,
    pub dead: SqsQueue,
}

impl Dispatch {
    /// Reads each pixel's token once, here, at cold start; a pixel whose token is
    /// missing is logged, and its events are retried until the token is stored.
    pub async fn new(settings: DispatchSettings, sdk: &SdkConfig) -> Result<Self, reqwest::Error> {
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let (tokens, missing) = pixel_tokens(&settings.mapping, &secrets_manager(sdk)).await;
        for (pixel, why) in missing {
            tracing::error!(
                pixel,
                error = %ghl_capi::error::chain(&why),
                "no Conversions API token for this pixel"
            );
        }
        Ok(Dispatch {
            capi: CapiClient::new(
                &settings.capi_base_url,
                &settings.capi_version,
                tokens,
                settings.http_timeout,
            )?,
            mapping: settings.mapping,
            source: SqsQueue::new(sqs.clone(), settings.dispatch_queue_url),
            dead: SqsQueue::new(sqs, settings.dead_letter_queue_url),
        })
    }

    /// Handles one batch from the dispatch queue.
    pub async fn handle(&self, event: &SqsEvent) -> SqsBatchResponse {
        let records = records(event);
        let failed =
            dispatch_records(&self.mapping, &self.capi, &self.dead, &records, Utc::now()).await;
        settle("dispatch", &self.source, event, failed).await
    }

    pub async fn run(self) -> Result<(), lambda_runtime::Error> {
        let this = &self;
        run_sqs(|event| async move { this.handle(&event).await }).await
    }
}
