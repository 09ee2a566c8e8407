//! `contact-enrichment`: queued webhooks in, GHL reads, events for Meta out.

use ghl_capi::settings::EnrichSettings;
use ghl_capi_aws::config;
use ghl_capi_aws::lambda::{self, Enrichment};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    lambda::init_telemetry()?;
    let settings = EnrichSettings::from_lookup(|name| std::env::var(name).ok())?;
    Enrichment::new(settings, &config::sdk_config().await)
        .await?
        .run()
        .await
}
