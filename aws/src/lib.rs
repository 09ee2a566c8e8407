//! AWS adapters of the library's ports, and the Lambda handlers over them, kept in
//! their own crate so that the core library and the `ghl-capi` command never compile
//! the AWS SDK.
//!
//! - [`sqs`]: [`Queue`](ghl_capi::queue::Queue) on SQS (FIFO and standard).
//! - [`dynamo`]: [`StateStore`](ghl_capi::enrich::StateStore) on DynamoDB.
//! - [`lambda`]: the functions' handlers.
//! - [`metrics`]: CloudWatch metrics in the Embedded Metric Format.
//! - [`secrets`]: [`SecretStore`](ghl_capi::secrets::SecretStore) on Secrets Manager.
pub mod dynamo;
pub mod lambda;
pub mod metrics;
pub mod secrets;
pub mod sqs;
