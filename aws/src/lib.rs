//! AWS adapters of the library's ports, and the Lambda handlers over them, kept in
//! their own crate so that the core library (and local mode, `ghl-capi-local`) never
//! compile the AWS SDK. The `ghl-capi` command does, for what it reads on AWS: `dlq`
//! on SQS, `trace --aws` in CloudWatch Logs, `verify` with Secrets Manager.
//!
//! - [`config`]: every AWS client's configuration, each call bounded in time.
//! - [`sqs`]: [`Queue`](ghl_capi::ports::queue::Queue) on SQS (FIFO and standard).
//! - [`dynamo`]: [`StateStore`](ghl_capi::ports::state::StateStore) and
//!   [`Lease`](ghl_capi::ports::lease::Lease) on DynamoDB.
//! - [`secrets`]: [`SecretStore`](ghl_capi::ports::secrets::SecretStore) on Secrets Manager.
//! - [`mappings`]: [`MappingStore`](ghl_capi::ports::mappings::MappingStore) on S3.
//! - [`metrics`]: CloudWatch metrics in the Embedded Metric Format.
//! - [`lambda`]: the functions' handlers over these adapters.
pub mod config;
pub mod dynamo;
pub mod lambda;
pub mod mappings;
pub mod metrics;
pub mod secrets;
pub mod sqs;
