//! Workflow calls in enrichment: what a call gives to build from, and its count
//! by workflow.
//!
//! A call is a `workflow.fired` occurrence. One that declares the trigger it tells
//! of (its Custom Data `trigger`, such as `opportunity.stage_changed`) is also
//! told as that trigger's webhook, from the opportunity or appointment it carries
//! ([`Occurrence::of_workflow_call`]): the trigger's rules fire from it as from GHL's
//! webhook of the same change, with the same event ids, and the opportunity's
//! stage and status are remembered as a webhook's are.

use chrono::{DateTime, Utc};

use super::{Enriched, Enricher, Read, done, opportunity};
use crate::ghl::workflow::WorkflowCall;
use crate::jobs::{DeadLetter, Stage, WorkflowJob};
use crate::mapping::{Occurrence, Trigger};

/// A workflow call's occurrences and the contact it carries; a body this build
/// cannot read (intake read it, so a different build queued it) is the job's
/// letter, kept for a redrive.
pub(super) fn read(job: &WorkflowJob, now: DateTime<Utc>) -> Result<Read, Enriched> {
    let letter = |why: String| {
        let mut letter =
            DeadLetter::new(&job.event_id, Stage::Enrich, "malformed_workflow_call", why);
        letter.triggers = vec![Trigger::WorkflowFired.name().to_owned()];
        done(vec![], vec![letter], None)
    };
    let call = WorkflowCall::parse(job.body.as_bytes()).map_err(|e| letter(e.to_string()))?;
    let (occurrences, told) =
        Occurrence::of_workflow_call(&call, &job.event_id, job.received_at, now)
            .map_err(|e| letter(e.to_string()))?;
    let records = told.iter().filter_map(opportunity::remembered).collect();
    Ok(Read {
        source: job.event_id.clone(),
        location: call.location_id.clone(),
        occurrences,
        carried_attribution: call.carries_attribution(),
        workflow: Some(
            call.workflow
                .refs()
                .into_iter()
                .map(str::to_owned)
                .collect(),
        ),
        carried: Some(call.contact),
        seen: None,
        deleted: None,
        records,
        stranger: false,
    })
}

impl<G, S> Enricher<'_, G, S> {
    /// A workflow call's outcome, counted once by its workflow as the mapping names
    /// it (so the dimension stays bounded), and logged (ids and names only) when
    /// no rule fired on it, whether as `workflow.fired` or as the trigger it told.
    pub(super) fn workflow_counted(
        &self,
        refs: Option<&[String]>,
        (source, location, contact): (&str, &str, &str),
        fired: bool,
    ) {
        let Some(refs) = refs else {
            return;
        };
        let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
        let workflow = self.mapping.workflow_metric_name(&refs);
        crate::telemetry::workflow_call(workflow, fired);
        if !fired {
            tracing::info!(
                event_id = source,
                location_id = location,
                contact_id = contact,
                workflow,
                "a workflow call no rule fires for: nothing is sent"
            );
        }
    }
}
