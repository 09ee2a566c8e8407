//! The AWS adapters and the Lambda handlers over a real `moto_server` (started by
//! `scripts/test.sh`), and the template's wiring: one test binary, a module per
//! subject.

mod common;
mod dynamo;
mod pipeline;
mod secrets;
mod sqs;
mod template;
mod tokens;
