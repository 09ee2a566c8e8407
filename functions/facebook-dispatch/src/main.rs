//! `facebook-dispatch`: events in, Conversions API batches out, refusals dead-lettered.

use ghl_capi::settings::DispatchSettings;
use ghl_capi_aws::config;
use ghl_capi_aws::lambda::{self, Dispatch};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    lambda::init_telemetry()?;
    let settings = DispatchSettings::from_lookup(|name| std::env::var(name).ok())?;
    Dispatch::new(settings, &config::sdk_config().await)
        .await?
        .run()
        .await
}
