//! `reconcile`: on a schedule, each connected location's changes that no webhook
//! delivered, found by polling GHL and queued for enrichment.

use ghl_capi::settings::ReconcileFnSettings;
use ghl_capi_aws::config;
use ghl_capi_aws::lambda::{self, Reconciliation};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    lambda::init_telemetry()?;
    let settings = ReconcileFnSettings::from_lookup(|name| std::env::var(name).ok())?;
    Reconciliation::new(settings, &config::sdk_config().await)
        .await?
        .run()
        .await
}
