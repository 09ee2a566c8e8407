//! A backfill's opportunities, for a mapping whose rules or audiences read them.
//! GHL's opportunity search has no documented filter by time (its `date` and
//! `endDate` do not say which time they read), so the location's opportunities
//! are listed whole and each one's history in the period is told
//! ([`OpportunityJob::history`]): its creation, its status (a won deal's
//! Purchase), its stage, each as the webhook GHL sent, so with that webhook's
//! event id.
//!
//! Each is judged before it is queued, with the contact the search embeds (its
//! name, email, phone and tags; enrichment reads the whole contact): only the
//! webhooks with an event Meta still takes are told with events; older ones are
//! counted, and an opportunity with none to send is told to the audiences alone,
//! since membership has no age.

use chrono::{DateTime, Utc};
use serde_json::Map;

use super::{Backfill, BackfillError, Progress, Tally};
use crate::capi::ServerEvent;
use crate::ghl::Contact;
use crate::ghl::budget::Use;
use crate::ghl::client::GhlClient;
use crate::ghl::opportunities_api::Opportunity;
use crate::ghl::tokens::TokenSource;
use crate::jobs::{Backfilled, EnrichJob, OpportunityJob, among};
use crate::mapping::Occurrence;
use crate::ports::queue::{Outgoing, QueueError};
use crate::pull::listing::OpportunityPages;

/// What the listing of one page of opportunities came to.
pub(super) struct Page {
    pub jobs: Vec<Outgoing>,
    /// The events to send, built from the embedded contacts (a dry run shows them).
    pub events: Vec<ServerEvent>,
}

/// The pages of `location`'s opportunities, from where `at` stands.
pub(super) fn pages<'g, T: TokenSource>(
    ghl: &'g GhlClient<T>,
    location: &str,
    plan: &Backfill<'_>,
    at: &Progress,
) -> OpportunityPages<'g, T> {
    OpportunityPages::new(
        ghl,
        (location, Use::Backfill),
        at.opportunities_after.clone(),
        plan.pace,
        plan.patience,
    )
}

/// Judges and turns one page of opportunities into jobs, counting into `tally`.
pub(super) fn page(
    plan: &Backfill<'_>,
    location: &str,
    listed: Vec<Opportunity>,
    tally: &mut Tally,
    now: DateTime<Utc>,
) -> Result<Page, BackfillError> {
    let listing = super::listing(plan);
    let audiences = plan
        .mapping
        .audiences_for(location)
        .any(|a| a.entity() == Some("opportunity"));
    let mut page = Page {
        jobs: Vec::new(),
        events: Vec::new(),
    };
    for opportunity in listed {
        let job = OpportunityJob::new(location, opportunity, plan.since, now);
        let history = job.history(plan.since, plan.until);
        if history.is_empty() {
            continue;
        }
        tally.opportunities += 1;
        let mut fresh = Vec::new();
        for kind in &history {
            if judge(plan, &job, kind, tally, now, &mut page.events) {
                fresh.push((*kind).to_owned());
            }
        }
        // Every webhook told carries the opportunity as it is now, so one job
        // brings its contact's audiences in step: the one with events, if any.
        let (told, rules) = if !fresh.is_empty() {
            tally.opportunities_queued += 1;
            (fresh, Some(plan.rules.clone()))
        } else if audiences {
            tally.opportunities_for_audiences += 1;
            (history.iter().map(|k| (*k).to_owned()).collect(), None)
        } else {
            continue;
        };
        let at = (listing.as_str(), plan.since);
        let backfill = Backfilled { told, rules };
        let job = OpportunityJob::backfilled(location, job.opportunity, at, backfill, now);
        let message = EnrichJob::Opportunity(job)
            .outgoing()
            .map_err(|e| BackfillError::Queue(QueueError::new(e)))?;
        page.jobs.push(message);
    }
    Ok(page)
}

/// Whether the webhook of `kind` has an event Meta would still take, counting
/// what the mapping makes of it, and keeping the events built in `events`.
/// Identifiers the embedded contact lacks do not count against it: enrichment
/// reads the whole contact, and letters an event it still refuses, with why.
fn judge(
    plan: &Backfill<'_>,
    job: &OpportunityJob,
    kind: &str,
    tally: &mut Tally,
    now: DateTime<Utc>,
    events: &mut Vec<ServerEvent>,
) -> bool {
    let contact = embedded(&job.opportunity);
    let related = Map::new();
    let mut fresh = false;
    for occurrence in Occurrence::of_listed_opportunity(job, kind, now) {
        for mapped in plan.mapping.map(&occurrence, &contact, &related, now) {
            if !among(&plan.rules, &mapped.rule) || mapped.pixels.is_empty() {
                continue;
            }
            match mapped.outcome {
                Ok(event) => {
                    fresh = true;
                    *tally.events.entry(mapped.rule).or_default() += 1;
                    events.push(event);
                }
                Err(why) if why.code() == "too_old" => {
                    *tally.too_old.entry(mapped.rule).or_default() += 1;
                }
                Err(why) => {
                    let code = why.code();
                    fresh |= matches!(code, "no_identifiers" | "insufficient_identifiers");
                    let by_rule = tally.refused.entry(code.to_owned()).or_default();
                    *by_rule.entry(mapped.rule).or_default() += 1;
                }
            }
        }
    }
    fresh
}

/// The contact the search embeds in `opportunity` (or only its id).
fn embedded(opportunity: &Opportunity) -> Contact {
    let id = opportunity.contact_id.clone().unwrap_or_default();
    opportunity
        .extra
        .get("contact")
        .and_then(|c| serde_json::from_value::<Contact>(c.clone()).ok())
        .map(|mut contact| {
            if contact.id.is_empty() {
                contact.id.clone_from(&id);
            }
            contact
        })
        .unwrap_or(Contact {
            id,
            ..Contact::default()
        })
}
