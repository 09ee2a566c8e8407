//! A whole stack for the handler tests: queues, table and secrets in a real
//! `moto_server`, GHL and Meta stood in for, the three handlers wired as the
//! template wires them; and the loop that runs the consumers as Lambda would.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use ghl_capi::ports::mappings::MappingStore;
use ghl_capi::settings::{DispatchSettings, EnrichSettings, IntakeSettings};
use ghl_capi_aws::lambda::{Dispatch, Enrichment, Intake};
use ghl_capi_aws::mappings::{S3Mappings, s3_client};
use ghl_capi_tests::fixtures::{self, DATASET, LOCATION};
use ghl_capi_tests::stand_in::{MetaStandIn, ghl_serves};
use ghl_capi_tests::{moto, signing, unique};
use lambda_http::Body;
use serde_json::{Value, json};
use wiremock::MockServer;

use crate::iam::Calls;

pub(crate) const API_KEY: &str = "ck-test-0123456789";
/// GHL's token for the location, as the stack stores it.
pub(crate) const GHL_TOKEN: &str = "at-loc1";

/// A whole stack: queues, table and secrets in moto; GHL and Meta stood in for.
pub(crate) struct Stack {
    pub(crate) sqs: aws_sdk_sqs::Client,
    pub(crate) secrets: aws_sdk_secretsmanager::Client,
    /// What the stack's resources are named after (the stack name).
    pub(crate) id: String,
    pub(crate) enrich_url: String,
    pub(crate) dispatch_url: String,
    pub(crate) dead_url: String,
    pub(crate) intake: Intake,
    pub(crate) enrichment: Enrichment,
    pub(crate) dispatch: Dispatch,
    /// Meta, serving the main pixel's dataset.
    pub(crate) meta: MetaStandIn,
    pub(crate) ghl: MockServer,
    pub(crate) graph: MockServer,
    /// The functions' variables.
    pub(crate) vars: HashMap<&'static str, String>,
    /// The AWS calls each handler made, by its function's name in the template.
    pub(crate) calls: Vec<(&'static str, Calls)>,
}

/// The stack, with the fixture mapping and `extra` rules.
pub(crate) async fn stack(extra: &str) -> Stack {
    Stack::with(extra, &[]).await
}

impl Stack {
    /// The stack, with the fixture mapping and `extra` rules (`{stack}` in them
    /// stands for the stack's name), and the functions' variables `overrides` set
    /// (or replaced).
    pub(crate) async fn with(extra: &str, overrides: &[(&'static str, String)]) -> Stack {
        let token = r#"{ secret = "{stack}/meta/main" }"#;
        Stack::with_mapping(
            &(fixtures::mapping_text_with_token(token) + extra),
            overrides,
        )
        .await
    }

    /// The stack, publishing `mapping` (`{stack}` in it stands for the stack's
    /// name; its main pixel's token is kept in `{stack}/meta/main`).
    pub(crate) async fn with_mapping(mapping: &str, overrides: &[(&'static str, String)]) -> Stack {
        let sdk = moto::sdk_config().await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let id = unique("e2e");
        // Retried messages come back quickly in tests: hidden for 1 s once received.
        let enrich_url = moto::queue(&sqs, &format!("{id}-enrich.fifo"), Some(1)).await;
        let dispatch_url = moto::queue(&sqs, &format!("{id}-dispatch"), Some(1)).await;
        let dead_url = moto::queue(&sqs, &format!("{id}-dead"), Some(1)).await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let table = moto::state_table(&dynamo).await;
        let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
        for (name, value) in [
            (
                format!("{id}/ghl/{LOCATION}"),
                json!({"access_token": GHL_TOKEN}).to_string(),
            ),
            (
                format!("{id}/meta/main"),
                r#"{"access_token":"EAAB-main","app_secret":"s3cret"}"#.to_owned(),
            ),
            (
                format!("{id}/conversion-keys"),
                json!([{"id": "test", "key": API_KEY, "locations": [LOCATION]}]).to_string(),
            ),
        ] {
            moto::secret(&secrets, &name, &value).await;
        }

        let ghl = MockServer::start().await;
        let graph = MockServer::start().await;
        let meta = MetaStandIn::expecting_token("EAAB-main");
        meta.mount(&graph, DATASET).await;

        let mapping = mapping.replace("{stack}", &id);
        // Published, as `mapping publish --aws` does: the functions read it there.
        let mappings = mapping_bucket(&sdk, &id).await;
        mappings.publish(&mapping).await.expect("published");
        let mut vars: HashMap<&'static str, String> = HashMap::from([
            ("GHL_WEBHOOK_ED25519_PUBLIC_KEY", signing::public_pem()),
            ("GHL_WEBHOOK_ACCEPT_RSA", "false".into()),
            ("GHL_APP_ID", fixtures::APP_ID.into()),
            (
                "CONVERSION_API_KEYS_SECRET",
                format!("{id}/conversion-keys"),
            ),
            ("ENRICH_QUEUE_URL", enrich_url.clone()),
            ("DISPATCH_QUEUE_URL", dispatch_url.clone()),
            ("DEAD_LETTER_QUEUE_URL", dead_url.clone()),
            ("STATE_TABLE", table),
            ("MAPPING_BUCKET", format!("{id}-mapping")),
            ("MAPPING_REFRESH_SECONDS", "1".into()),
            ("GHL_API_BASE_URL", ghl.uri()),
            ("GHL_TOKEN_SECRET_PREFIX", format!("{id}/ghl/")),
            ("GRAPH_API_BASE_URL", graph.uri()),
            ("HTTP_TIMEOUT_SECONDS", "5".into()),
            // An hour's hold in seconds: waits from 100 ms (1 s on SQS) to 2 s.
            ("HOLD_BASE_MS", "100".into()),
            ("HOLD_CAP_SECONDS", "2".into()),
        ]);
        vars.extend(overrides.iter().cloned());
        let lookup = |name: &str| vars.get(name).cloned();
        let calls: Vec<(&str, Calls)> =
            ["IntakeFunction", "EnrichmentFunction", "DispatchFunction"]
                .into_iter()
                .map(|f| (f, Calls::default()))
                .collect();
        let intake = Intake::new(
            IntakeSettings::from_lookup(lookup).expect("intake settings"),
            &calls[0].1.recording(&sdk),
        )
        .await
        .expect("intake");
        let enrichment = Enrichment::new(
            EnrichSettings::from_lookup(lookup).expect("enrichment settings"),
            &calls[1].1.recording(&sdk),
        )
        .await
        .expect("enrichment");
        let dispatch = Dispatch::new(
            DispatchSettings::from_lookup(lookup).expect("dispatch settings"),
            &calls[2].1.recording(&sdk),
        )
        .await
        .expect("dispatch");
        Stack {
            sqs,
            secrets,
            id,
            enrich_url,
            dispatch_url,
            dead_url,
            intake,
            enrichment,
            dispatch,
            meta,
            ghl,
            graph,
            vars,
            calls,
        }
    }
}

/// The stack's mapping bucket, versioned, with nothing published yet.
pub(crate) async fn mapping_bucket(sdk: &aws_config::SdkConfig, id: &str) -> S3Mappings {
    use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
    let s3 = s3_client(sdk);
    let bucket = format!("{id}-mapping");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket");
    let versioned = VersioningConfiguration::builder()
        .status(BucketVersioningStatus::Enabled)
        .build();
    s3.put_bucket_versioning()
        .bucket(&bucket)
        .versioning_configuration(versioned)
        .send()
        .await
        .expect("versioning");
    S3Mappings::new(s3, bucket, "mapping.toml")
}

impl Stack {
    /// The stack's mapping bucket, as `mapping publish --aws` reaches it.
    pub(crate) async fn mappings(&self) -> S3Mappings {
        let sdk = ghl_capi_tests::moto::sdk_config().await;
        S3Mappings::new(
            s3_client(&sdk),
            format!("{}-mapping", self.id),
            "mapping.toml",
        )
    }
}

pub(crate) async fn ghl_has(server: &MockServer, contact: &Value) {
    ghl_serves(server, contact, GHL_TOKEN).await;
}

impl Stack {
    pub(crate) async fn post(
        &self,
        uri: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> (u16, Value) {
        let mut request = lambda_http::http::Request::builder()
            .method("POST")
            .uri(uri);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = self
            .intake
            .handle(request.body(Body::Binary(body)).expect("request"))
            .await;
        let text = match response.body() {
            Body::Text(t) => t.clone(),
            other => panic!("unexpected body {other:?}"),
        };
        (
            response.status().as_u16(),
            serde_json::from_str(&text).expect("JSON answer"),
        )
    }

    pub(crate) async fn deliver(&self, body: Vec<u8>) -> (u16, Value) {
        let signature = signing::sign(&body);
        self.post("/webhooks/ghl", &[("x-ghl-signature", signature)], body)
            .await
    }

    /// Up to 10 messages as Lambda's SQS event, built from the JSON Lambda sends.
    pub(crate) async fn receive(&self, url: &str) -> SqsEvent {
        self.receive_up_to(url, 10).await
    }

    /// Up to `most` messages in one event, gathered as Lambda's poller gathers a
    /// batch (SQS hands out at most 10 at a time).
    pub(crate) async fn receive_up_to(&self, url: &str, most: usize) -> SqsEvent {
        // While it gathers, what it has is hidden as long as the queue would hide
        // it on AWS; the test queues' own timeout (1 s) could show it again.
        let hidden = (most > 10).then_some(60);
        let mut messages = Vec::new();
        while messages.len() < most {
            let more = moto::receive_hidden(&self.sqs, url, hidden).await;
            if more.is_empty() {
                break;
            }
            messages.extend(more);
        }
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                let attributes: HashMap<String, String> = m
                    .attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                json!({"messageId": m.message_id(), "receiptHandle": m.receipt_handle(),
                    "body": m.body(), "attributes": attributes, "messageAttributes": {},
                    "eventSource": "aws:sqs", "awsRegion": "us-east-1"})
            })
            .collect();
        serde_json::from_value(json!({"Records": records})).expect("SQS event")
    }

    /// Deletes what the handler did not hand back, as Lambda does.
    pub(crate) async fn delete_done(
        &self,
        url: &str,
        event: &SqsEvent,
        response: &SqsBatchResponse,
    ) {
        use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        let done: Vec<&str> = event
            .records
            .iter()
            .filter(|m| !failed.contains(&m.message_id.as_deref().unwrap_or_default()))
            .filter_map(|m| m.receipt_handle.as_deref())
            .collect();
        for chunk in done.chunks(10) {
            let entries = chunk.iter().enumerate().map(|(i, receipt)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(*receipt)
                    .build()
                    .expect("entry")
            });
            self.sqs
                .delete_message_batch()
                .queue_url(url)
                .set_entries(Some(entries.collect()))
                .send()
                .await
                .expect("deleted");
        }
    }

    /// Messages the queue at `url` holds: visible, in hand and delayed.
    pub(crate) async fn pending(&self, url: &str) -> u64 {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let answer = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::All)
            .send()
            .await
            .expect("attributes");
        let attributes = answer.attributes.unwrap_or_default();
        [
            A::ApproximateNumberOfMessages,
            A::ApproximateNumberOfMessagesNotVisible,
            A::ApproximateNumberOfMessagesDelayed,
        ]
        .iter()
        .filter_map(|a| attributes.get(a)?.parse::<u64>().ok())
        .sum()
    }

    /// Runs both consumers as Lambda would (deleting what succeeded) until both
    /// queues hold nothing, waiting out held messages; returns how many batches
    /// were handled. Gives up (failing the test) after a minute and a half.
    pub(crate) async fn drain(&self) -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        let mut batches = 0;
        loop {
            let mut busy = false;
            for (url, dispatch) in [(&self.enrich_url, false), (&self.dispatch_url, true)] {
                let event = self.receive(url).await;
                if event.records.is_empty() {
                    continue;
                }
                busy = true;
                batches += 1;
                let response = if dispatch {
                    self.dispatch.handle(&event).await
                } else {
                    self.enrichment.handle(&event).await
                };
                self.delete_done(url, &event, &response).await;
            }
            if !busy {
                if self.pending(&self.enrich_url).await + self.pending(&self.dispatch_url).await
                    == 0
                {
                    return batches;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the queues did not drain"
                );
                // Held messages reappear after their wait (whole seconds on SQS).
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
        }
    }

    /// Every message of the dead-letter queue.
    pub(crate) async fn dead_letters(&self) -> Vec<Value> {
        self.receive_up_to(&self.dead_url, usize::MAX)
            .await
            .records
            .iter()
            .map(|m| serde_json::from_str(m.body.as_deref().unwrap_or_default()).expect("json"))
            .collect()
    }
}
