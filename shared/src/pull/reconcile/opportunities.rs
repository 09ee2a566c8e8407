//! Reconciliation's opportunities, for a mapping whose rules (or audiences) read
//! them. GHL's opportunity search has no documented filter by change, so each run
//! lists a location's opportunities whole (100 a page, paced as the contacts are)
//! and compares each with the stage and status it was last seen in
//! ([`SeenOpportunity`]). One whose status or stage differs, or one created in the
//! window and never seen, is queued for enrichment, which tells it as the webhooks
//! GHL would have sent, with their change keys and so their event ids. One never
//! seen and older gets its baseline; a field the state did not know is filled in.

use chrono::{DateTime, Utc};

use super::{ReconcileError, ReconcileSettings, Reconciled};
use crate::ghl::budget::Use;
use crate::ghl::client::GhlClient;
use crate::ghl::parse_timestamp;
use crate::ghl::tokens::TokenSource;
use crate::jobs::{EnrichJob, OpportunityJob, SeenOpportunity};
use crate::mapping::audience::REMEMBERED_FOR;
use crate::ports::queue::{Queue, QueueError};
use crate::ports::state::StateStore;
use crate::pull::listing::OpportunityPages;

/// Lists `location`'s opportunities into `run`: their changes since `since`
/// queued on `queue`; with `since` `None` (a baseline), every one only recorded.
pub(super) async fn opportunities<T: TokenSource>(
    ghl: &GhlClient<T>,
    state: &impl StateStore,
    queue: &impl Queue,
    (location, since): (&str, Option<DateTime<Utc>>),
    settings: &ReconcileSettings,
    (run, now): (&mut Reconciled, DateTime<Utc>),
) -> Result<(), ReconcileError> {
    let mut pages = OpportunityPages::new(
        ghl,
        (location, Use::Reconcile),
        None,
        settings.pace(),
        settings.patience,
    );
    while let Some(page) = pages.next_page().await.map_err(ReconcileError::Ghl)? {
        let mut jobs = Vec::new();
        for listed in page {
            run.opportunities += 1;
            let key = SeenOpportunity::key(location, &listed.id);
            let was: Option<SeenOpportunity> = state
                .record(&key)
                .await
                .map_err(ReconcileError::State)?
                .and_then(|t| serde_json::from_str(&t).ok());
            let seen = SeenOpportunity::of(&listed);
            let created = listed.created_at.as_deref().and_then(parse_timestamp);
            let changed = since.is_some_and(|since| {
                !SeenOpportunity::changes(was.as_ref(), &seen, created, since).is_empty()
            });
            if let (true, Some(since)) = (changed, since) {
                let job = EnrichJob::Opportunity(OpportunityJob::new(location, listed, since, now));
                let message = job
                    .outgoing()
                    .map_err(|e| ReconcileError::Queue(QueueError::new(e)))?;
                jobs.push(message);
                continue;
            }
            let known = was.clone().unwrap_or_default();
            let merged = SeenOpportunity {
                stage: seen.stage.or(known.stage),
                status: seen.status.or(known.status),
            };
            if was.as_ref() != Some(&merged) {
                let text = crate::ports::text(&merged);
                state
                    .set_record(&key, &text, REMEMBERED_FOR)
                    .await
                    .map_err(ReconcileError::State)?;
                run.baselined += u64::from(was.is_none());
            }
        }
        run.changed += jobs.len() as u64;
        queue.send_all(jobs).await.map_err(ReconcileError::Queue)?;
    }
    Ok(())
}
