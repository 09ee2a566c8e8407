//! `ghl-capi backfill`: a location's history sent through the pipeline. The
//! contacts created in a period are listed (oldest first, by key:
//! [`Lister::by_time`]) and each is judged as a new contact with its tags added
//! (as `map` judges one): a contact with an event Meta would still take (at most
//! 7 days old) is queued for enrichment, which builds and sends its events as for
//! a webhook; an older one is counted, not sent, and queued only to bring the
//! audiences in step (membership has no age). Every job's key is the contact's and
//! the period's, and every event id is the change's, so a backfill run twice
//! sends nothing twice.
//!
//! After each page's jobs are queued, where the listing stands is written to the
//! state store: `--resume` goes on from there, skipping nothing and queuing no
//! contact again.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ghl::client::GhlClient;
use crate::ghl::tokens::TokenSource;
use crate::ghl::{Contact, GhlError};
use crate::jobs::{EnrichJob, ListedJob, among};
use crate::mapping::{Mapping, Occurrence, Trigger};
use crate::ops::listing::{Lister, Patience, Stamp};
use crate::ports::queue::{Queue, QueueError};
use crate::ports::state::{StateError, StateStore};

/// How long where a backfill stands is remembered.
const KEPT_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

/// What to backfill, and how.
#[derive(Debug, Clone)]
pub struct Backfill<'m> {
    pub mapping: &'m Mapping,
    /// Only these rules' events (all when empty).
    pub rules: Vec<String>,
    /// Contacts created from `since` to `until` (now when `None`).
    pub since: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
    /// Go on from where the last run of this period stopped.
    pub resume: bool,
    /// The least time between two listing requests.
    pub pace: Duration,
    pub patience: Patience,
}

/// Why a backfill stopped (`--resume` goes on from its last page).
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("GHL failed the listing: {0}")]
    Ghl(#[source] GhlError),
    #[error("the state store failed: {0}")]
    State(#[source] StateError),
    #[error("cannot queue the contacts for the pipeline: {0}")]
    Queue(#[source] QueueError),
}

/// What a backfill found and did, by rule and by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Contacts created in the period, listed.
    pub listed: u64,
    /// Contacts queued with events to send.
    pub queued: u64,
    /// Contacts queued for their audience memberships only.
    pub for_audiences: u64,
    /// Events to send, by rule.
    pub events: BTreeMap<String, u64>,
    /// Events older than Meta takes (7 days), not sent, by rule.
    pub too_old: BTreeMap<String, u64>,
    /// Events the mapping refuses, by reason code and rule.
    pub refused: BTreeMap<String, BTreeMap<String, u64>>,
}

/// Where a backfill of a period stands, as the state store keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Every contact created before this was listed and queued (`None`: the
    /// listing went by page, and starts over).
    pub from: Option<DateTime<Utc>>,
    /// The contacts created at `from` that were.
    pub at_from: Vec<String>,
    pub tally: Tally,
    pub done: bool,
}

fn progress_key(location: &str, plan: &Backfill<'_>) -> String {
    let until = plan.until.map(|u| u.to_rfc3339()).unwrap_or_default();
    format!("backfill#{location}#{}#{until}", plan.since.to_rfc3339())
}

/// Where the last backfill of `plan`'s period for `location` stands.
pub async fn progress(
    state: &impl StateStore,
    location: &str,
    plan: &Backfill<'_>,
) -> Result<Option<Progress>, StateError> {
    let text = state.record(&progress_key(location, plan)).await?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

/// Backfills `location` at `now`: queues on `queue` (none: a dry run, which
/// queues and records nothing), telling `each_page` every page's contacts of the
/// period and the tally so far.
pub async fn backfill<T: TokenSource, Q: Queue>(
    ghl: &GhlClient<T>,
    state: &impl StateStore,
    queue: Option<&Q>,
    location: &str,
    plan: &Backfill<'_>,
    now: DateTime<Utc>,
    each_page: &mut impl FnMut(&[Contact], &Tally, Option<u64>),
) -> Result<Progress, BackfillError> {
    let earlier = match (plan.resume, queue) {
        (true, Some(_)) => progress(state, location, plan)
            .await
            .map_err(BackfillError::State)?,
        _ => None,
    };
    let mut at = earlier.unwrap_or_default();
    if at.done {
        return Ok(at);
    }
    let from = at.from.unwrap_or(plan.since);
    let mut pages = Lister::by_time(ghl, location, Stamp::Added, from, plan.until)
        .resuming(std::mem::take(&mut at.at_from))
        .patient(plan.patience)
        .paced(plan.pace);
    let until = plan.until.map(|u| u.to_rfc3339()).unwrap_or_default();
    let listing = format!("backfill:{}:{until}", plan.since.to_rfc3339());
    while let Some(contacts) = pages.next_page().await.map_err(BackfillError::Ghl)? {
        // A listing GHL would not filter gives every contact: the period's are kept.
        let contacts: Vec<Contact> = contacts
            .into_iter()
            .filter(|c| in_period(c, plan))
            .collect();
        let mut jobs = Vec::new();
        for contact in &contacts {
            at.tally.listed += 1;
            let fresh = judge(plan, location, contact, &mut at.tally, now);
            let job = if fresh {
                at.tally.queued += 1;
                ListedJob::backfilled(&listing, location, contact.clone(), &plan.rules, now)
            } else if plan.mapping.audiences_for(location).next().is_some() {
                at.tally.for_audiences += 1;
                ListedJob::new(&listing, location, &contact.id, Some(contact.clone()), now)
            } else {
                continue;
            };
            let message = EnrichJob::Listed(job)
                .outgoing()
                .map_err(|e| BackfillError::Queue(QueueError::new(e)))?;
            jobs.push(message);
        }
        if let Some(queue) = queue {
            queue.send_all(jobs).await.map_err(BackfillError::Queue)?;
            at.from = pages.listed_before();
            at.at_from = pages.at_key().to_vec();
            keep(state, location, plan, &at).await?;
        }
        each_page(&contacts, &at.tally, pages.total);
    }
    at.done = true;
    if queue.is_some() {
        keep(state, location, plan, &at).await?;
    }
    Ok(at)
}

async fn keep(
    state: &impl StateStore,
    location: &str,
    plan: &Backfill<'_>,
    at: &Progress,
) -> Result<(), BackfillError> {
    let text = serde_json::to_string(at).unwrap_or_default();
    state
        .set_record(&progress_key(location, plan), &text, KEPT_FOR)
        .await
        .map_err(BackfillError::State)
}

fn in_period(contact: &Contact, plan: &Backfill<'_>) -> bool {
    contact
        .date_added()
        .is_some_and(|at| at >= plan.since && plan.until.is_none_or(|until| at <= until))
}

/// Counts what the mapping makes of `contact` as a new contact; whether any of
/// its events is one Meta still takes.
fn judge(
    plan: &Backfill<'_>,
    location: &str,
    contact: &Contact,
    tally: &mut Tally,
    now: DateTime<Utc>,
) -> bool {
    let mapping = plan.mapping;
    let with_tags = mapping.rules_for(Trigger::TagAdded).next().is_some();
    let occurrences =
        Occurrence::for_contact_record(Trigger::ContactCreated, location, contact, with_tags, now);
    let mut fresh = false;
    let related = serde_json::Map::new();
    for occurrence in &occurrences {
        for mapped in mapping.map(occurrence, contact, &related, now) {
            if !among(&plan.rules, &mapped.rule) || mapped.pixels.is_empty() {
                continue;
            }
            match mapped.outcome {
                Ok(_) => {
                    fresh = true;
                    *tally.events.entry(mapped.rule).or_default() += 1;
                }
                Err(why) if why.code() == "too_old" => {
                    *tally.too_old.entry(mapped.rule).or_default() += 1;
                }
                Err(why) => {
                    let by_rule = tally.refused.entry(why.code().to_owned()).or_default();
                    *by_rule.entry(mapped.rule).or_default() += 1;
                }
            }
        }
    }
    fresh
}
