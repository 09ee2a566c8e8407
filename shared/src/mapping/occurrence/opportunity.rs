//! The occurrences of an opportunity a listing found (reconciliation, backfill),
//! outside any webhook: told as the webhook GHL would have sent for its change, so
//! its events and their ids are those the webhook would have made.

use chrono::{DateTime, Utc};

use super::Occurrence;
use crate::ghl::webhook::Webhook;
use crate::jobs::OpportunityJob;

impl Occurrence {
    /// The occurrences of the webhook of `kind` GHL would have sent for the job's
    /// opportunity; none (logged and counted) if it does not read as that webhook.
    pub fn of_listed_opportunity(
        job: &OpportunityJob,
        kind: &str,
        now: DateTime<Utc>,
    ) -> Vec<Occurrence> {
        let body = job.webhook(kind).to_string();
        match Webhook::parse(body.as_bytes()) {
            Ok(webhook) => Occurrence::from_webhook(&webhook, None, now).0,
            Err(e) => {
                tracing::warn!(
                    job = job.key,
                    kind,
                    error = %e,
                    "a listed opportunity does not read as its webhook: its change is not sent"
                );
                crate::telemetry::skipped("unreadable_opportunity");
                Vec::new()
            }
        }
    }
}
