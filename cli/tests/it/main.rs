//! The `ghl-capi` command as users run it, a real process each time: one test
//! binary, a module per command.

mod admin;
mod audiences;
mod backfill;
mod cli;
mod dlq_sqs;
mod drain;
mod event_ids;
mod graph_version;
mod group_commit;
mod limits;
mod mapping_init;
mod mapping_live;
mod privacy;
mod quick_start;
mod reconcile;
mod serve;
mod soak;
mod status;
mod strangers;
mod trace_aws;
mod verify;
mod workflow;
mod workflow_keys;
mod workflow_shapes;
mod write_back;
