//! The intake function: API Gateway requests answered by the library's routes, over
//! SQS and Secrets Manager, installing the marketplace app when it is configured.

use aws_config::SdkConfig;
use chrono::Utc;
use ghl_capi::ghl::install::Installer;
use ghl_capi::intake::{Api, Request};
use ghl_capi::settings::IntakeSettings;
use lambda_http::{Body, Response};

use super::{BoxError, secrets_manager};
use crate::dynamo::{DynamoLease, DynamoState};
use crate::secrets::SecretsManager;
use crate::sqs::SqsQueue;

/// The intake API on its AWS adapters.
#[derive(Debug)]
pub struct Intake {
    pub api: Api<SqsQueue, SecretsManager, Option<AwsInstaller>>,
}

type AwsInstaller = Installer<SecretsManager, DynamoLease, DynamoState, SqsQueue>;

impl Intake {
    /// Built from its settings. The app's credentials are read per install, so a
    /// secret missing or unreadable at start closes only `/oauth/callback` (503),
    /// never the webhook routes.
    pub async fn new(settings: IntakeSettings, sdk: &SdkConfig) -> Result<Self, BoxError> {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let state_table = settings.state_table.unwrap_or_default();
        let connected = settings
            .connect_queue_url
            .map(|url| SqsQueue::new(sqs.clone(), url));
        let install = settings.ghl_app_secret.map(|app_secret| Installer {
            secrets: secrets_manager(sdk),
            app_secret,
            base_url: settings.ghl_api_base_url,
            timeout: settings.http_timeout,
            prefix: settings.ghl_token_secret_prefix,
            redirect_uri: settings.oauth_redirect_uri,
            claims: DynamoLease::new(dynamo.clone(), state_table.clone()),
            pending: DynamoState::new(dynamo, state_table),
            connected,
            companies: settings.ghl_company_ids,
        });
        let api = Api {
            keys: settings.keys,
            window: settings.window,
            apps: settings.apps,
            queue: SqsQueue::new(sqs, settings.enrich_queue_url),
            secrets: secrets_manager(sdk),
            conversion_keys_secret: settings.conversion_keys_secret,
            allow_unscoped_keys: settings.allow_unscoped_keys,
            warned_unscoped: Default::default(),
            install,
        };
        Ok(Intake { api })
    }

    /// Answers one API Gateway request.
    pub async fn handle(&self, request: lambda_http::Request) -> Response<Body> {
        let view = Request::from_http(
            request.method(),
            request.uri(),
            request.headers(),
            request.body().as_ref(),
        );
        let answer = self.api.handle(view, Utc::now()).await;
        crate::metrics::flush();
        answer.to_http().map(Body::Text)
    }

    /// Serves the intake API on Lambda until the runtime stops.
    pub async fn run(self) -> Result<(), lambda_http::Error> {
        let this = &self;
        lambda_http::run(lambda_http::service_fn(move |request| async move {
            Ok::<_, std::convert::Infallible>(this.handle(request).await)
        }))
        .await
    }
}
