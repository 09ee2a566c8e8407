//! Opportunities in enrichment. Each opportunity webhook leaves the stage and
//! status it told of ([`SeenOpportunity`]), so reconciliation can tell a change
//! no webhook delivered. An opportunity reconciliation listed is told as the
//! webhooks GHL would have sent for its changes since it was last seen (found
//! against the state *now*: a webhook handled since the listing leaves none), so
//! its events and their ids are those the webhooks would have made. One a backfill
//! listed is told as the webhooks of its history in the period.

use chrono::{DateTime, Utc};

use super::{Enriched, Enricher, Read, retry_state};
use crate::ghl::GhlReader;
use crate::ghl::webhook::Webhook;
use crate::jobs::{OpportunityJob, SeenOpportunity};
use crate::mapping::Occurrence;
use crate::ports::state::StateStore;

/// What an opportunity webhook leaves to remember, `(key, state)`: the stage and
/// status it carries.
pub(super) fn remembered(webhook: &Webhook) -> Option<(String, String)> {
    let event = match webhook {
        Webhook::OpportunityCreate(e)
        | Webhook::OpportunityUpdate(e)
        | Webhook::OpportunityStageUpdate(e)
        | Webhook::OpportunityStatusUpdate(e)
        | Webhook::OpportunityMonetaryValueUpdate(e)
        | Webhook::OpportunityAssignedToUpdate(e) => e,
        _ => return None,
    };
    let seen = SeenOpportunity {
        stage: event.pipeline_stage_id.clone(),
        status: event.status.clone(),
    };
    if seen == SeenOpportunity::default() {
        return None;
    }
    let location = event.envelope.location_id.as_deref()?;
    let key = SeenOpportunity::key(location, &event.id);
    Some((key, crate::ports::text(&seen)))
}

impl<G: GhlReader, S: StateStore> Enricher<'_, G, S> {
    /// A listed opportunity as the webhooks of its changes since last seen; `Err`
    /// with the job's outcome when the state store failed.
    pub(super) async fn opportunity(
        &mut self,
        job: &OpportunityJob,
        now: DateTime<Utc>,
    ) -> Result<Read, Enriched> {
        let listed = &job.opportunity;
        let key = SeenOpportunity::key(&job.location_id, &listed.id);
        let was: Option<SeenOpportunity> = match self.state.record(&key).await {
            Ok(text) => text.and_then(|t| serde_json::from_str(&t).ok()),
            Err(e) => return Err(retry_state(e)),
        };
        let seen = SeenOpportunity::of(listed);
        let mut occurrences = Vec::new();
        for kind in job.told(was.as_ref()) {
            occurrences.extend(Occurrence::of_listed_opportunity(job, &kind, now));
        }
        Ok(Read {
            source: job.key.clone(),
            location: job.location_id.clone(),
            occurrences,
            carried: None,
            carried_attribution: false,
            seen: None,
            deleted: None,
            records: vec![(key, crate::ports::text(&seen))],
            stranger: false,
            workflow: None,
        })
    }
}
