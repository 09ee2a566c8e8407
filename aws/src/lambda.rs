//! The three functions as Lambda handlers: each turns its event into the library's
//! terms, runs the library's logic over the AWS adapters, and answers in Lambda's.
//! The binaries in `functions/` only read their settings and call [`run_intake`],
//! [`Enrichment::run`] or [`Dispatch::run`]; tests drive the same handlers directly.

use std::collections::HashMap;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use chrono::Utc;
use ghl_capi::api::{Api, Request};
use ghl_capi::capi::client::{GraphClient, pixel_tokens};
use ghl_capi::consumer::{Record, Retry, dispatch_records, enrich_records};
use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::install::Installer;
use ghl_capi::ghl::oauth::{OAuthApp, OAuthClient};
use ghl_capi::ghl::tokens::ManagedTokens;
use ghl_capi::ghl::webhook::SignatureHeaders;
use ghl_capi::mapping::Mapping;
use ghl_capi::secrets::SecretStore;
use ghl_capi::settings::{DispatchSettings, EnrichSettings, IntakeSettings, RefreshSettings};
use lambda_http::{Body, Response};

use crate::dynamo::{DynamoLease, DynamoState};
use crate::secrets::{DEFAULT_CACHE, SecretsManager};
use crate::sqs::SqsQueue;

/// The SDK configuration from Lambda's environment (`AWS_ENDPOINT_URL` points every
/// client at an emulator).
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// JSON logs, one object per line, as CloudWatch Logs Insights reads them, with the
/// level from `RUST_LOG` (default `info`); and metrics as EMF lines, flushed after each
/// invocation. Nothing logged anywhere carries PII or secrets.
pub fn init_telemetry() {
    json_logs(std::io::stdout).init();
    crate::metrics::install(Box::new(|| Box::new(std::io::stdout())));
}

/// The log format: `{"level", "fields": {"message", …}}` per line.
fn json_logs<W>(
    writer: W,
) -> tracing_subscriber::fmt::SubscriberBuilder<
    tracing_subscriber::fmt::format::JsonFields,
    tracing_subscriber::fmt::format::Format<tracing_subscriber::fmt::format::Json, ()>,
    tracing_subscriber::EnvFilter,
    W,
>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .with_writer(writer)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_lines_are_one_json_object_each() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = super::json_logs(move || writer.clone()).finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(status = 429, outcome = "enqueue_failed", "request");
            tracing::warn!(code = "too_old", "dead letter");
        });
        let text = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("utf-8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        assert_eq!(lines[0]["fields"]["message"], "request");
        assert_eq!(lines[0]["fields"]["status"], 429);
        assert_eq!(lines[1]["fields"]["code"], "too_old");
        assert_eq!(lines[1]["level"], "WARN");
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The intake API on SQS and Secrets Manager, installing the app when configured.
pub type Intake = Api<SqsQueue, SecretsManager, Option<Installer<SecretsManager>>>;

/// The OAuth client of the marketplace app whose `client_id` and `client_secret`
/// the secret `app_secret` holds.
async fn oauth_client(
    secrets: &SecretsManager,
    app_secret: &str,
    base_url: &str,
    timeout: std::time::Duration,
) -> Result<OAuthClient, BoxError> {
    let app: OAuthApp = serde_json::from_str(secrets.get(app_secret).await?.expose())
        .map_err(|e| format!("{app_secret} must hold {{\"client_id\", \"client_secret\"}}: {e}"))?;
    Ok(OAuthClient::new(base_url, app, timeout)?)
}

/// The intake API built from its settings (reading the app's credentials, if any).
pub async fn intake(settings: IntakeSettings, sdk: &SdkConfig) -> Result<Intake, BoxError> {
    let secrets = || SecretsManager::new(aws_sdk_secretsmanager::Client::new(sdk), DEFAULT_CACHE);
    let install = match &settings.ghl_app_secret {
        Some(name) => Some(Installer {
            oauth: oauth_client(
                &secrets(),
                name,
                &settings.ghl_api_base_url,
                settings.http_timeout,
            )
            .await?,
            secrets: secrets(),
            prefix: settings.ghl_token_secret_prefix,
            redirect_uri: settings.oauth_redirect_uri,
        }),
        None => None,
    };
    Ok(Api {
        keys: settings.keys,
        window: settings.window,
        queue: SqsQueue::new(aws_sdk_sqs::Client::new(sdk), settings.enrich_queue_url),
        secrets: secrets(),
        conversion_keys_secret: settings.conversion_keys_secret,
        install,
    })
}

/// Answers one API Gateway request.
pub async fn handle_http(api: &Intake, request: lambda_http::Request) -> Response<Body> {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let request_view = Request {
        method: request.method().as_str(),
        path: request.uri().path(),
        query: request.uri().query(),
        authorization: header("authorization"),
        signatures: SignatureHeaders {
            ghl: header("x-ghl-signature"),
            legacy: header("x-wh-signature"),
        },
        body: request.body().as_ref(),
    };
    let answer = api.handle(request_view, Utc::now()).await;
    crate::metrics::flush();
    tracing::info!(
        method = request_view.method,
        path = request_view.path,
        status = answer.status,
        outcome = answer.outcome,
        webhook_id = answer.body.get("webhookId").and_then(|v| v.as_str()),
        event_id = answer.body.get("eventId").and_then(|v| v.as_str()),
        "request"
    );
    let (content_type, text) = answer.content();
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = lambda_http::http::StatusCode::from_u16(answer.status)
        .unwrap_or(lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        "content-type",
        lambda_http::http::HeaderValue::from_static(content_type),
    );
    response
}

/// Serves the intake API on Lambda until the runtime stops.
pub async fn run_intake(api: Intake) -> Result<(), lambda_http::Error> {
    let api = &api;
    lambda_http::run(lambda_http::service_fn(move |request| async move {
        Ok::<_, std::convert::Infallible>(handle_http(api, request).await)
    }))
    .await
}

/// Ends a batch of an SQS consumer: logs and counts it, and answers Lambda.
async fn settle(
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
async fn run_sqs<F, Fut>(handle: F) -> Result<(), lambda_runtime::Error>
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

/// An SQS event's records, in the library's terms.
pub fn records(event: &SqsEvent) -> Vec<Record> {
    event
        .records
        .iter()
        .map(|m| Record {
            message_id: m.message_id.clone().unwrap_or_default(),
            body: m.body.clone().unwrap_or_default(),
            group_id: m.attributes.get("MessageGroupId").cloned(),
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
            tracing::warn!(error = %e, message_id = retry.message_id, "could not delay a retry");
        }
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = retry.message_id;
        response.batch_item_failures.push(failure);
    }
    response
}

/// The enrichment function over its AWS adapters.
#[derive(Debug)]
pub struct Enrichment {
    pub mapping: Mapping,
    pub ghl: GhlClient<ManagedTokens<SecretsManager, DynamoLease>>,
    pub state: DynamoState,
    /// The enrichment queue itself, to delay retries on.
    pub source: SqsQueue,
    pub dispatch: SqsQueue,
    pub dead: SqsQueue,
}

/// Token sets in Secrets Manager under `token_prefix`, refreshed under leases in
/// `state_table`, with the marketplace app's credentials when `app_secret` names them.
pub async fn managed_tokens(
    sdk: &SdkConfig,
    base_url: &str,
    token_prefix: &str,
    app_secret: Option<&str>,
    state_table: &str,
    timeout: std::time::Duration,
) -> Result<ManagedTokens<SecretsManager, DynamoLease>, BoxError> {
    let secrets = SecretsManager::new(aws_sdk_secretsmanager::Client::new(sdk), DEFAULT_CACHE);
    let oauth = match app_secret {
        Some(name) => Some(oauth_client(&secrets, name, base_url, timeout).await?),
        None => None,
    };
    let lease = DynamoLease::new(aws_sdk_dynamodb::Client::new(sdk), state_table);
    Ok(ManagedTokens::new(secrets, lease, oauth, token_prefix))
}

impl Enrichment {
    pub async fn new(settings: EnrichSettings, sdk: &SdkConfig) -> Result<Self, BoxError> {
        let sqs = aws_sdk_sqs::Client::new(sdk);
        Ok(Enrichment {
            ghl: GhlClient::new(
                &settings.ghl_api_base_url,
                managed_tokens(
                    sdk,
                    &settings.ghl_api_base_url,
                    &settings.ghl_token_secret_prefix,
                    settings.ghl_app_secret.as_deref(),
                    &settings.state_table,
                    settings.http_timeout,
                )
                .await?,
                settings.http_timeout,
            )?,
            mapping: settings.mapping,
            state: DynamoState::new(aws_sdk_dynamodb::Client::new(sdk), settings.state_table),
            source: SqsQueue::new(sqs.clone(), settings.enrich_queue_url),
            dispatch: SqsQueue::new(sqs.clone(), settings.dispatch_queue_url),
            dead: SqsQueue::new(sqs, settings.dead_letter_queue_url),
        })
    }

    /// Handles one batch from the enrichment queue.
    pub async fn handle(&self, event: &SqsEvent) -> SqsBatchResponse {
        let records = records(event);
        let failed = enrich_records(
            &self.mapping,
            &self.ghl,
            &self.state,
            &self.dispatch,
            &self.dead,
            &records,
            Utc::now(),
        )
        .await;
        settle("enrichment", &self.source, event, failed).await
    }

    pub async fn run(self) -> Result<(), lambda_runtime::Error> {
        let this = &self;
        run_sqs(|event| async move { this.handle(&event).await }).await
    }
}

/// The dispatch function over its AWS adapters.
#[derive(Debug)]
pub struct Dispatch {
    pub mapping: Mapping,
    pub graph: GraphClient,
    pub source: SqsQueue,
    pub dead: SqsQueue,
}

impl Dispatch {
    /// Reads each pixel's token once, here, at cold start; a pixel whose token is
    /// missing is logged, and its events are retried until the token is stored.
    pub async fn new(settings: DispatchSettings, sdk: &SdkConfig) -> Result<Self, reqwest::Error> {
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let secrets = SecretsManager::new(aws_sdk_secretsmanager::Client::new(sdk), DEFAULT_CACHE);
        let (tokens, missing) = pixel_tokens(&settings.mapping, &secrets).await;
        for (pixel, why) in missing {
            tracing::error!(pixel, error = %why, "no Conversions API token for this pixel");
        }
        Ok(Dispatch {
            graph: GraphClient::new(
                &settings.graph_api_base_url,
                &settings.graph_api_version,
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
            dispatch_records(&self.mapping, &self.graph, &self.dead, &records, Utc::now()).await;
        settle("dispatch", &self.source, event, failed).await
    }

    pub async fn run(self) -> Result<(), lambda_runtime::Error> {
        let this = &self;
        run_sqs(|event| async move { this.handle(&event).await }).await
    }
}

/// The scheduled refresh: every token set under the prefix that expires soon is
/// refreshed ahead of time, under the same leases as on-demand refreshes.
#[derive(Debug)]
pub struct TokenRefresh {
    pub tokens: ManagedTokens<SecretsManager, DynamoLease>,
    pub prefix: String,
    pub ahead: std::time::Duration,
}

impl TokenRefresh {
    pub async fn new(settings: RefreshSettings, sdk: &SdkConfig) -> Result<Self, BoxError> {
        Ok(TokenRefresh {
            tokens: managed_tokens(
                sdk,
                &settings.ghl_api_base_url,
                &settings.ghl_token_secret_prefix,
                Some(&settings.ghl_app_secret),
                &settings.state_table,
                settings.http_timeout,
            )
            .await?,
            prefix: settings.ghl_token_secret_prefix,
            ahead: settings.ahead,
        })
    }

    /// One run: a summary, and an error (so the function's error alarm fires) when
    /// any token could not be refreshed.
    pub async fn handle(&self) -> Result<serde_json::Value, BoxError> {
        let names = self.tokens.secrets().names(&self.prefix).await?;
        let (refreshed, failed) = self.tokens.refresh_due(&names, self.ahead).await;
        crate::metrics::flush();
        for (name, error) in &failed {
            tracing::error!(secret = name, error = %error, "token refresh failed");
        }
        tracing::info!(
            tokens = names.len(),
            refreshed,
            failed = failed.len(),
            "token refresh"
        );
        if failed.is_empty() {
            Ok(serde_json::json!({"tokens": names.len(), "refreshed": refreshed}))
        } else {
            Err(format!(
                "{} of {} token sets could not be refreshed",
                failed.len(),
                names.len()
            )
            .into())
        }
    }

    pub async fn run(self) -> Result<(), lambda_runtime::Error> {
        let this = &self;
        lambda_runtime::run(lambda_runtime::service_fn(
            move |_: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
                Box::pin(this.handle()).await
            },
        ))
        .await
    }
}
