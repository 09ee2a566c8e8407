//! `webhook-intake`: GHL webhooks and posted conversions in, the enrichment queue out.

use ghl_capi::settings::IntakeSettings;
use ghl_capi_aws::config;
use ghl_capi_aws::lambda::{self, Intake};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    lambda::init_telemetry()?;
    let settings = IntakeSettings::from_lookup(|name| std::env::var(name).ok())?;
    Intake::new(settings, &config::sdk_config().await)
        .await?
        .run()
        .await
}
