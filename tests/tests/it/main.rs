//! The library's tests against the reference data beside the repository and the
//! shared fakes and stand-ins: one test binary, a module per subject.

mod audience_replace;
mod audiences;
mod backfill;
mod capi_client;
mod consumers;
mod contacts_contract;
mod deliver;
mod enrich;
mod ghl_client;
mod graph_versions;
mod install;
mod intake;
mod listing;
mod mapping;
mod names;
mod names_contract;
mod normalize_vectors;
mod opportunities_contract;
mod properties;
mod reconcile;
mod tokens;
mod webhooks;
