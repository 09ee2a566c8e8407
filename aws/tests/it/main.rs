//! The AWS adapters and the Lambda handlers over a real `moto_server` (started by
//! `scripts/test.sh`), and the template's wiring: one test binary, a module per
//! subject.

mod common;
mod cost;
mod drain;
mod dynamo;
mod holding;
mod iam;
mod mapping;
mod pipeline;
mod promises;
mod reconcile;
mod runtime;
mod secrets;
mod soak;
mod sqs;
mod stack;
mod template;
mod tokens;
mod write_back;
