//! AWS adapters of the library's ports, kept in their own crate so that the core
//! library and the `ghl-capi` command never compile the AWS SDK.
//!
//! - [`sqs`]: [`Queue`](ghl_capi::queue::Queue) on SQS (FIFO and standard).
//! - [`dynamo`]: [`StateStore`](ghl_capi::enrich::StateStore) on DynamoDB.
//! - [`secrets`]: [`SecretStore`](ghl_capi::secrets::SecretStore) on Secrets Manager.
pub mod dynamo;
pub mod secrets;
pub mod sqs;
