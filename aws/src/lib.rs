//! AWS adapters of the library's ports, and the Lambda handlers over them, kept in
//! their own crate so that the core library and the `ghl-capi` command never compile
//! the AWS SDK.
//!
//! - [`sqs`]: [`Queue`](ghl_capi::ports::queue::Queue) on SQS (FIFO and standard).
//! - [`dynamo`]: [`StateStore`](ghl_capi::ports::state::StateStore) and
//!   [`Lease`](ghl_capi::ports::lease::Lease) on DynamoDB.
//! - [`secrets`]: [`SecretStore`](ghl_capi::ports::secrets::SecretStore) on Secrets Manager.
//! - [`metrics`]: CloudWatch metrics in the Embedded Metric Format.
//! - [`lambda`]: the functions' handlers over these adapters.
pub mod dynamo;
pub mod lambda;
pub mod metrics;
pub mod secrets;
pub mod sqs;
