//! Workflow calls in enrichment: what a call gives to build from, and its count
//! by workflow.

use super::{Enriched, Enricher, Read, done};
use crate::ghl::workflow::{REFS, WorkflowCall};
use crate::jobs::{DeadLetter, Stage, WorkflowJob};
use crate::mapping::{Occurrence, Trigger};

/// A workflow call's occurrence and the contact it carries; a body this build
/// cannot read (intake read it, so a different build queued it) is the job's
/// letter, kept for a redrive.
pub(super) fn read(job: &WorkflowJob) -> Result<Read, Enriched> {
    match WorkflowCall::parse(job.body.as_bytes()) {
        Ok(call) => Ok(Read {
            source: job.event_id.clone(),
            location: call.location_id.clone(),
            occurrences: vec![Occurrence::for_workflow(
                &call,
                &job.event_id,
                job.received_at,
            )],
            carried_attribution: call.carries_attribution(),
            carried: Some(call.contact),
            seen: None,
            deleted: None,
            records: Vec::new(),
            stranger: false,
        }),
        Err(e) => {
            let mut letter = DeadLetter::new(
                &job.event_id,
                Stage::Enrich,
                "malformed_workflow_call",
                e.to_string(),
            );
            letter.triggers = vec![Trigger::WorkflowFired.name().to_owned()];
            Err(done(vec![], vec![letter], None))
        }
    }
}

impl<G, S> Enricher<'_, G, S> {
    /// A workflow call's outcome, counted by its workflow as the mapping names it
    /// (so the dimension stays bounded), and logged (ids and names only) when no
    /// rule fired. Other occurrences are not counted here.
    pub(super) fn workflow_counted(&self, occ: &Occurrence, source: &str, fired: bool) {
        if occ.trigger != Trigger::WorkflowFired {
            return;
        }
        let refs: Vec<&str> = occ
            .entity
            .as_ref()
            .and_then(|e| e.get(REFS))
            .and_then(serde_json::Value::as_array)
            .map(|refs| refs.iter().filter_map(serde_json::Value::as_str).collect())
            .unwrap_or_default();
        let workflow = self.mapping.workflow_metric_name(&refs);
        crate::telemetry::workflow_call(workflow, fired);
        if !fired {
            tracing::info!(
                event_id = source,
                location_id = occ.location_id,
                contact_id = occ.contact_id,
                workflow,
                "a workflow call no rule fires for: nothing is sent"
            );
        }
    }
}
