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
//! For a mapping that reads opportunities, the location's opportunities are
//! listed next, and each one's history in the period is sent the same way
//! ([`opportunities`]).
//!
//! After each page's jobs are queued, where the listing stands is written to the
//! state store: `--resume` goes on from there, skipping nothing and queuing no
//! contact or opportunity again.

mod opportunities;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::capi::ServerEvent;
use crate::ghl::budget::Use;
use crate::ghl::client::GhlClient;
use crate::ghl::opportunities_api::Cursor;
use crate::ghl::tokens::TokenSource;
use crate::ghl::{Contact, GhlError};
use crate::jobs::{EnrichJob, ListedJob, among};
use crate::mapping::{Mapping, Occurrence, Trigger};
use crate::ports::queue::{Queue, QueueError};
use crate::ports::state::{StateError, StateStore};
use crate::pull::listing::{Lister, Patience, Stamp};

/// How long where a backfill stands is remembered.
const KEPT_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

/// What to backfill, and how.
#[derive(Debug, Clone)]
pub struct Backfill<'m> {
    pub mapping: &'m Mapping,
    /// Only these rules' events (all when empty).
    pub rules: Vec<String>,
    /// Contacts created, and opportunities' history, from `since` to `until`
    /// (now when `None`).
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
    #[error("cannot queue the jobs for the pipeline: {0}")]
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
    /// Opportunities with history in the period (created, won or lost, moved).
    #[serde(default)]
    pub opportunities: u64,
    /// … queued with events to send.
    #[serde(default)]
    pub opportunities_queued: u64,
    /// … queued for their contacts' audience memberships only.
    #[serde(default)]
    pub opportunities_for_audiences: u64,
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
    /// Every contact of the period was listed and queued.
    #[serde(default)]
    pub contacts_done: bool,
    /// The opportunities before this cursor were listed and queued (`None`: from
    /// the first, once the contacts are done).
    #[serde(default)]
    pub opportunities_after: Option<Cursor>,
    pub done: bool,
}

/// A page a backfill listed, as its caller is told of it.
#[derive(Debug, Clone, Copy)]
pub enum Listed<'a> {
    /// The period's contacts of a page.
    Contacts(&'a [Contact]),
    /// A page of opportunities: the events built from those with history in the
    /// period (with the contacts the search embeds).
    Opportunities(&'a [ServerEvent]),
}

fn progress_key(location: &str, plan: &Backfill<'_>) -> String {
    let until = plan.until.map(|u| u.to_rfc3339()).unwrap_or_default();
    format!("backfill#{location}#{}#{until}", plan.since.to_rfc3339())
}

/// The name of the listing of `plan`'s period: part of its jobs' keys.
fn listing(plan: &Backfill<'_>) -> String {
    let until = plan.until.map(|u| u.to_rfc3339()).unwrap_or_default();
    format!("backfill:{}:{until}", plan.since.to_rfc3339())
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
/// queues and records nothing), telling `each_page` every page listed and the
/// tally so far (and, for contacts, how many the search holds).
pub async fn backfill<T: TokenSource, Q: Queue>(
    ghl: &GhlClient<T>,
    state: &impl StateStore,
    queue: Option<&Q>,
    location: &str,
    plan: &Backfill<'_>,
    now: DateTime<Utc>,
    each_page: &mut impl FnMut(Listed<'_>, &Tally, Option<u64>),
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
    if !at.contacts_done {
        contacts(ghl, state, queue, location, plan, (&mut at, now), each_page).await?;
        at.contacts_done = true;
    }
    if plan.mapping.reads_opportunities() {
        let mut pages = opportunities::pages(ghl, location, plan, &at);
        while let Some(listed) = pages.next_page().await.map_err(BackfillError::Ghl)? {
            let page = opportunities::page(plan, location, listed, &mut at.tally, now)?;
            if let Some(queue) = queue {
                queue
                    .send_all(page.jobs)
                    .await
                    .map_err(BackfillError::Queue)?;
                at.opportunities_after = pages.after().cloned();
                keep(state, location, plan, &at).await?;
            }
            each_page(Listed::Opportunities(&page.events), &at.tally, None);
        }
    }
    at.done = true;
    if queue.is_some() {
        keep(state, location, plan, &at).await?;
    }
    Ok(at)
}

/// The period's contacts, from where `at` stands.
async fn contacts<T: TokenSource, Q: Queue>(
    ghl: &GhlClient<T>,
    state: &impl StateStore,
    queue: Option<&Q>,
    location: &str,
    plan: &Backfill<'_>,
    (at, now): (&mut Progress, DateTime<Utc>),
    each_page: &mut impl FnMut(Listed<'_>, &Tally, Option<u64>),
) -> Result<(), BackfillError> {
    let from = at.from.unwrap_or(plan.since);
    let mut pages = Lister::by_time(
        ghl,
        (location, Use::Backfill),
        Stamp::Added,
        from,
        plan.until,
    )
    .resuming(std::mem::take(&mut at.at_from))
    .patient(plan.patience)
    .paced(plan.pace);
    let listing = listing(plan);
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
            keep(state, location, plan, at).await?;
        }
        each_page(Listed::Contacts(&contacts), &at.tally, pages.total);
    }
    Ok(())
}

async fn keep(
    state: &impl StateStore,
    location: &str,
    plan: &Backfill<'_>,
    at: &Progress,
) -> Result<(), BackfillError> {
    let text = crate::ports::text(at);
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
