//! The scheduled token refresh: every token set under the prefix that expires
//! soon is refreshed ahead of time, under the same leases as on-demand refreshes.

use aws_config::SdkConfig;
use ghl_capi::settings::RefreshSettings;

use super::{BoxError, Tokens, managed_tokens};

/// The scheduled refresh: every token set under the prefix that expires soon is
/// refreshed ahead of time, under the same leases as on-demand refreshes.
#[derive(Debug)]
pub struct TokenRefresh {
    pub tokens: Tokens,
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
            ),
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
            tracing::error!(
                secret = name,
                error = %ghl_capi::error::chain(error),
                "token refresh failed"
            );
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
