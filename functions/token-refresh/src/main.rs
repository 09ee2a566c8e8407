//! `token-refresh`: on a schedule, refreshes the GHL token sets that expire soon.

use ghl_capi::settings::RefreshSettings;
use ghl_capi_aws::config;
use ghl_capi_aws::lambda::{self, TokenRefresh};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    lambda::init_telemetry()?;
    let settings = RefreshSettings::from_lookup(|name| std::env::var(name).ok())?;
    TokenRefresh::new(settings, &config::sdk_config().await)
        .await?
        .run()
        .await
}
