//! How every AWS client of ours is configured: from the environment, as the SDK
//! reads it (`AWS_ENDPOINT_URL` points every client at an emulator), each call
//! bounded in time. The functions and the command (`dlq`, `trace --aws`, `verify`)
//! build theirs here.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};

/// How long one AWS call may take, every retry included: well inside the shortest
/// function timeout (the intake's 10 s), so a slow SQS or DynamoDB answer becomes a
/// `429` to GHL or a retried record, never a function that times out.
pub const AWS_OPERATION_TIMEOUT: Duration = Duration::from_secs(4);
/// How long one attempt of an AWS call may take.
pub const AWS_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long connecting to an AWS endpoint may take.
pub const AWS_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The SDK configuration from the environment, every call bounded in time.
pub async fn sdk_config() -> SdkConfig {
    bounded(aws_config::defaults(BehaviorVersion::latest()))
        .load()
        .await
}

/// `loader` with every AWS call bounded in time (connect, attempt, operation).
pub fn bounded(loader: ConfigLoader) -> ConfigLoader {
    loader.timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(AWS_CONNECT_TIMEOUT)
            .operation_attempt_timeout(AWS_ATTEMPT_TIMEOUT)
            .operation_timeout(AWS_OPERATION_TIMEOUT)
            .build(),
    )
}
