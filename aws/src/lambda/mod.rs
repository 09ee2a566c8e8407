//! The five functions as Lambda handlers: each turns its event into the library's
//! terms, runs the library's logic over the AWS adapters, and answers in Lambda's.
//! Each is built from its settings the same way, `X::new(settings, &sdk).await?`,
//! and served with `.run().await`; tests drive the same handlers directly.
//!
//! - [`logging`]: JSON logs and EMF metrics.
//! - [`intake`]: the API Gateway function ([`Intake`]).
//! - [`batch`]: SQS batches in the library's terms, and item failures back.
//! - [`enrichment`], [`dispatch`]: the SQS-driven functions.
//! - [`token_refresh`]: the scheduled refresh.
//! - [`reconcile`]: the scheduled reconciliation.

pub mod batch;
pub mod dispatch;
pub mod enrichment;
pub mod intake;
mod logging;
pub mod reconcile;
pub mod token_refresh;

use aws_config::SdkConfig;
use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::tokens::{App, ManagedTokens};
use ghl_capi::mapping::live::LiveMapping;
use ghl_capi::settings::{GhlAccess, MappingSettings};

pub use dispatch::Dispatch;
pub use enrichment::Enrichment;
pub use intake::Intake;
pub use logging::{init_telemetry, json_logs};
pub use reconcile::Reconciliation;
pub use token_refresh::TokenRefresh;

use crate::dynamo::{DynamoLease, DynamoState};
use crate::mappings::{S3Mappings, s3_client};
use crate::secrets::{DEFAULT_CACHE, SecretsManager};

/// What a function's construction can fail with: reported at cold start.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The Secrets Manager adapter, with the functions' short cache.
fn secrets_manager(sdk: &SdkConfig) -> SecretsManager {
    SecretsManager::new(aws_sdk_secretsmanager::Client::new(sdk), DEFAULT_CACHE)
}

/// The mapping as a function runs it: the version published on S3, looked at
/// again as configured, or the configured one for good when none is published.
pub async fn live_mapping(
    settings: MappingSettings,
    sdk: &SdkConfig,
) -> Result<LiveMapping<S3Mappings>, BoxError> {
    Ok(match settings.published {
        Some(at) => {
            let store = S3Mappings::new(s3_client(sdk), at.bucket, at.key);
            LiveMapping::start(store, settings.every, settings.configured).await?
        }
        None => LiveMapping::fixed(settings.configured),
    })
}

/// GHL as a function reads it, its tokens managed under leases in `state_table`.
pub fn ghl_client(
    sdk: &SdkConfig,
    access: &GhlAccess,
    state_table: &str,
) -> Result<GhlClient<Tokens>, BoxError> {
    let tokens = managed_tokens(
        sdk,
        &access.base_url,
        &access.token_prefix,
        access.app_secret.as_deref(),
        state_table,
        access.http_timeout,
    );
    let client = GhlClient::new(&access.base_url, tokens, access.http_timeout)?;
    Ok(access.budget.apply(client))
}

/// The managed token sets of the functions that read GHL.
pub type Tokens = ManagedTokens<SecretsManager, DynamoLease, DynamoState>;

/// Token sets in Secrets Manager under `token_prefix`, refreshed under leases in
/// `state_table` (where agency locations to mint are kept too), with the
/// marketplace app's credentials, read when first needed, when `app_secret` names
/// them.
pub fn managed_tokens(
    sdk: &SdkConfig,
    base_url: &str,
    token_prefix: &str,
    app_secret: Option<&str>,
    state_table: &str,
    timeout: std::time::Duration,
) -> Tokens {
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let app = app_secret.map(|secret| App {
        secret: secret.to_owned(),
        base_url: base_url.to_owned(),
        timeout,
    });
    ManagedTokens::new(
        secrets_manager(sdk),
        DynamoLease::new(dynamo.clone(), state_table),
        DynamoState::new(dynamo, state_table),
        app,
        token_prefix,
    )
}
