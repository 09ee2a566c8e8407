//! SQS batches in the library's terms, and the answer Lambda expects back: the
//! records to retry (`ReportBatchItemFailures`), each hidden for as long as its
//! retry must wait.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use ghl_capi::batch::Retry;
use ghl_capi::ports::queue::Record;

use crate::sqs::SqsQueue;

/// An SQS event's records, in the library's terms: with how often each was
/// received, and when first (the hold of a record retried in place counts from it).
pub fn records(event: &SqsEvent) -> Vec<Record> {
    event
        .records
        .iter()
        .map(|m| {
            let attribute = |name: &str| m.attributes.get(name).map(String::as_str);
            Record {
                message_id: m.message_id.clone().unwrap_or_default(),
                body: m.body.clone().unwrap_or_default(),
                group_id: attribute("MessageGroupId").map(str::to_owned),
                receives: attribute("ApproximateReceiveCount")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1),
                first_received: attribute("ApproximateFirstReceiveTimestamp")
                    .and_then(|ms| ms.parse::<i64>().ok())
                    .and_then(chrono::DateTime::from_timestamp_millis),
            }
        })
        .collect()
}

/// The batch response naming the records to retry. Those with a wait are hidden on
/// `source` for that long first; if that fails they are simply retried sooner.
pub async fn batch_response(
    source: &SqsQueue,
    event: &SqsEvent,
    failed: Vec<Retry>,
) -> SqsBatchResponse {
    let receipts: HashMap<&str, &str> = event
        .records
        .iter()
        .filter_map(|m| Some((m.message_id.as_deref()?, m.receipt_handle.as_deref()?)))
        .collect();
    let mut response = SqsBatchResponse::default();
    for retry in failed {
        if let (Some(after), Some(receipt)) = (retry.after, receipts.get(retry.message_id.as_str()))
            && let Err(e) = source.delay(receipt, after).await
        {
            tracing::warn!(
                error = %ghl_capi::error::chain(&e),
                message_id = retry.message_id,
                "could not delay a retry; it comes back sooner"
            );
        }
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = retry.message_id;
        response.batch_item_failures.push(failure);
    }
    response
}

/// Ends a batch of an SQS consumer: logs and counts it, and answers Lambda.
pub(super) async fn settle(
    function: &'static str,
    source: &SqsQueue,
    event: &SqsEvent,
    failed: Vec<Retry>,
) -> SqsBatchResponse {
    let (records, retried) = (event.records.len(), failed.len());
    tracing::info!(function, records, retried, "batch");
    ghl_capi::telemetry::batch(function, records, retried);
    let response = batch_response(source, event, failed).await;
    crate::metrics::flush();
    response
}

/// Runs an SQS consumer on Lambda until the runtime stops.
pub(super) async fn run_sqs<F, Fut>(handle: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(SqsEvent) -> Fut,
    Fut: std::future::Future<Output = SqsBatchResponse>,
{
    let handle = &handle;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<SqsEvent>| async move {
            // Boxed: the handler's future is deep enough to trip the compiler's
            // layout recursion limit in the binary.
            Ok::<_, std::convert::Infallible>(Box::pin(handle(event.payload)).await)
        },
    ))
    .await
}
