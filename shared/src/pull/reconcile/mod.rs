//! Reconciliation: what webhooks did not deliver, found by polling. GHL replays
//! no lost webhook and pauses delivery to a URL that fails too often
//! (`reference/ghl-api.md` §3.6), so on a schedule each connected location's
//! contacts changed since its watermark are listed (oldest change first, by key:
//! [`Lister::changed_since`]) and compared with the tags the state store last saw.
//! A contact whose tags differ, or one created in the window and never seen, is
//! queued for enrichment, which finds its changes as its webhooks would have told
//! them ([`crate::mapping::Occurrence::missed`]) and sends them down the same
//! pipeline. A change a webhook delivered left its tags in the state store: it is
//! not queued, and if its webhook is still on its way, enrichment (in the
//! contact's order) finds nothing left to send.
//!
//! The first run for a location takes its baseline ([`seed`]) instead, sending
//! nothing. The watermark advances only after a page's jobs are queued, to a
//! change time before which everything was listed: a crash lists again, never
//! skips. Each listing starts `overlap` before it, since GHL's search index lags
//! its writes. Requests are paced to a share of the location's GHL budget, so
//! real-time enrichment keeps the rest.

mod opportunities;

use opportunities::opportunities;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ghl::client::GhlClient;
use crate::ghl::tokens::{MINT_PREFIX, TokenSource};
use crate::ghl::{Contact, GhlError};
use crate::jobs::{EnrichJob, ListedJob};
use crate::ports::queue::{Queue, QueueError};
use crate::ports::state::{StateError, StateStore};
use crate::pull::listing::{Lister, Patience};
use crate::pull::seed::{SeedError, Seeded, seed, seeded};

/// How long a location's watermark is remembered without a run.
const KEPT_FOR: Duration = Duration::from_secs(366 * 24 * 3600);

/// How reconciliation runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconcileSettings {
    /// The share of each location's GHL budget it may use (0 to 1).
    pub share: f64,
    /// GHL's budget per location: requests per window (100 per 10 s).
    pub budget: (u32, Duration),
    /// How far before the watermark each listing starts.
    pub overlap: Duration,
    pub patience: Patience,
    /// Whether opportunities are reconciled too (when the mapping reads them).
    pub opportunities: bool,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        ReconcileSettings {
            share: 0.2,
            budget: (100, Duration::from_secs(10)),
            overlap: Duration::from_secs(10 * 60),
            patience: Patience::default(),
            opportunities: false,
        }
    }
}

impl ReconcileSettings {
    /// The least time between two of its requests for one location.
    pub fn pace(&self) -> Duration {
        let (requests, window) = self.budget;
        let allowed = f64::from(requests) * self.share.clamp(0.001, 1.0);
        window.div_f64(allowed.max(f64::MIN_POSITIVE))
    }
}

/// The locations a scheduled run takes, in the order it takes them: each token set
/// stored under `prefix` (`names`, the secrets' names; an agency's own set aside),
/// and each location an agency install left to mint, the one reconciled longest ago
/// (or never) first, so a run cut short leaves the rest to go first next time.
pub async fn locations_in_turn(
    names: &[String],
    prefix: &str,
    state: &impl StateStore,
) -> Result<Vec<String>, StateError> {
    let company = format!("{prefix}company-");
    let mut locations: Vec<String> = names
        .iter()
        .filter(|name| !name.starts_with(&company))
        .filter_map(|name| name.strip_prefix(prefix))
        .map(str::to_owned)
        .collect();
    for (key, _) in state.records_under(MINT_PREFIX).await? {
        locations.extend(key.strip_prefix(MINT_PREFIX).map(str::to_owned));
    }
    locations.sort();
    locations.dedup();
    let mut runs = Vec::with_capacity(locations.len());
    for location in locations {
        let last = last_run(state, &location).await?.map(|r| r.at);
        runs.push((last, location));
    }
    runs.sort();
    Ok(runs.into_iter().map(|(_, location)| location).collect())
}

/// Why a location's run stopped (it runs again from its watermark).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("GHL failed the listing: {0}")]
    Ghl(#[source] GhlError),
    #[error("the state store failed: {0}")]
    State(#[source] StateError),
    #[error("cannot queue the changes found: {0}")]
    Queue(#[source] QueueError),
    #[error("cannot take the location's baseline: {0}")]
    Seed(#[source] SeedError),
}

impl ReconcileError {
    /// The run stopped for the location's GHL budget, kept for real-time
    /// enrichment: not a failure; the next run goes on from the watermark.
    pub fn waits_for_budget(&self) -> bool {
        matches!(
            self,
            ReconcileError::Ghl(GhlError::Reserved { .. })
                | ReconcileError::Seed(SeedError::Ghl(GhlError::Reserved { .. }))
        )
    }
}

/// A location's last run, as the state store keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconciled {
    /// Every change before this time has been listed.
    pub watermark: DateTime<Utc>,
    /// When the run started.
    pub at: DateTime<Utc>,
    /// Contacts listed.
    pub scanned: u64,
    /// Contacts queued with changes no webhook delivered.
    pub changed: u64,
    /// Contacts (and opportunities) never seen, older than the window: their tags
    /// (stage and status) became their baseline.
    pub baselined: u64,
    /// Opportunities listed.
    #[serde(default)]
    pub opportunities: u64,
    /// The baseline this run took, for a location's first run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeded: Option<Seeded>,
}

fn watermark_key(location: &str) -> String {
    format!("reconciled#{location}")
}

/// `location`'s last run, if it had one.
pub async fn last_run(
    state: &impl StateStore,
    location: &str,
) -> Result<Option<Reconciled>, StateError> {
    let text = state.record(&watermark_key(location)).await?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

async fn keep(state: &impl StateStore, location: &str, run: &Reconciled) -> Result<(), StateError> {
    let text = crate::ports::text(run);
    state
        .set_record(&watermark_key(location), &text, KEPT_FOR)
        .await
}

/// One run for `location` at `now`: its baseline if it has none, else the changes
/// since its watermark, queued on `queue` for enrichment. The run is logged, and a
/// failed one counted.
pub async fn reconcile<T: TokenSource>(
    ghl: &GhlClient<T>,
    state: &impl StateStore,
    queue: &impl Queue,
    location: &str,
    settings: &ReconcileSettings,
    now: DateTime<Utc>,
) -> Result<Reconciled, ReconcileError> {
    let outcome = match last_run(state, location).await {
        Err(e) => Err(ReconcileError::State(e)),
        Ok(None) => first_run(ghl, state, queue, location, settings, now).await,
        Ok(Some(last)) => {
            let from = (location, last.watermark);
            catch_up(ghl, state, queue, from, settings, now).await
        }
    };
    match &outcome {
        Ok(run) => tracing::info!(
            location_id = location,
            scanned = run.scanned,
            changed = run.changed,
            baselined = run.baselined,
            seeded = run.seeded.is_some(),
            watermark = %run.watermark,
            "reconciled"
        ),
        // Not a failure: the budget is enrichment's (counted as GhlBudgetWaits).
        Err(e) if e.waits_for_budget() => tracing::info!(
            location_id = location,
            reason = %crate::error::chain(e),
            "reconciliation waits for the location's GHL budget: it goes on from the \
             watermark next run"
        ),
        Err(e) => {
            tracing::error!(
                location_id = location,
                error = %crate::error::chain(e),
                "reconciliation failed: it runs again from the watermark"
            );
            crate::telemetry::reconcile_failed();
        }
    }
    outcome
}

/// The changes of `location` since its `watermark`.
async fn catch_up<T: TokenSource>(
    ghl: &GhlClient<T>,
    state: &impl StateStore,
    queue: &impl Queue,
    (location, watermark): (&str, DateTime<Utc>),
    settings: &ReconcileSettings,
    now: DateTime<Utc>,
) -> Result<Reconciled, ReconcileError> {
    let since = watermark - settings.overlap;
    let mut run = Reconciled {
        watermark,
        at: now,
        ..Reconciled::default()
    };
    let mut pages = Lister::changed_since(ghl, location, since)
        .patient(settings.patience)
        .paced(settings.pace());
    while let Some(contacts) = pages.next_page().await.map_err(ReconcileError::Ghl)? {
        let mut jobs = Vec::new();
        for contact in contacts {
            run.scanned += 1;
            if let Some(job) = compare(state, location, contact, since, &mut run, now).await? {
                jobs.push(job);
            }
        }
        run.changed += jobs.len() as u64;
        queue.send_all(jobs).await.map_err(ReconcileError::Queue)?;
        if let Some(before) = pages.listed_before().filter(|b| *b > run.watermark) {
            run.watermark = before.min(now);
            keep(state, location, &run)
                .await
                .map_err(ReconcileError::State)?;
        }
    }
    if settings.opportunities {
        let what = (location, Some(since));
        opportunities(ghl, state, queue, what, settings, (&mut run, now)).await?;
    }
    // Everything changed before the run started is listed.
    run.watermark = run.watermark.max(now);
    keep(state, location, &run)
        .await
        .map_err(ReconcileError::State)?;
    crate::telemetry::contacts_scanned(run.scanned);
    Ok(run)
}

/// A location never reconciled: its baseline (unless an operator took one; its
/// opportunities' too, when they are reconciled), and a watermark at the
/// baseline's start.
async fn first_run<T: TokenSource>(
    ghl: &GhlClient<T>,
    state: &impl StateStore,
    queue: &impl Queue,
    location: &str,
    settings: &ReconcileSettings,
    now: DateTime<Utc>,
) -> Result<Reconciled, ReconcileError> {
    let taken = seeded(state, location)
        .await
        .map_err(ReconcileError::State)?;
    // An operator's baseline was listed then, not by this run: it scans nothing.
    let (baseline, listed_now) = match taken {
        Some(before) => (before, false),
        None => {
            let pace = settings.pace();
            let taken = seed(ghl, state, location, now, pace, &mut |_, _| {}).await;
            (taken.map_err(ReconcileError::Seed)?, true)
        }
    };
    let mut run = Reconciled {
        watermark: baseline.at,
        at: now,
        scanned: if listed_now { baseline.listed } else { 0 },
        baselined: if listed_now { baseline.recorded } else { 0 },
        seeded: Some(baseline),
        ..Reconciled::default()
    };
    if settings.opportunities {
        let what = (location, None);
        opportunities(ghl, state, queue, what, settings, (&mut run, now)).await?;
    }
    keep(state, location, &run)
        .await
        .map_err(ReconcileError::State)?;
    crate::telemetry::contacts_scanned(run.scanned);
    Ok(run)
}

/// A listed contact against its tags as last seen: the job to queue when a webhook
/// seems to be missing; a contact never seen and older than the window gets its
/// baseline.
async fn compare(
    state: &impl StateStore,
    location: &str,
    contact: Contact,
    since: DateTime<Utc>,
    run: &mut Reconciled,
    now: DateTime<Utc>,
) -> Result<Option<crate::ports::queue::Outgoing>, ReconcileError> {
    let known = state
        .tags(location, &contact.id)
        .await
        .map_err(ReconcileError::State)?;
    let new = contact.date_added().is_some_and(|at| at >= since);
    match known {
        Some(tags) if same_tags(&tags, &contact.tags) => Ok(None),
        None if !new => {
            state
                .set_tags(location, &contact.id, &contact.tags)
                .await
                .map_err(ReconcileError::State)?;
            run.baselined += 1;
            Ok(None)
        }
        _ => {
            let job = EnrichJob::Listed(ListedJob::reconciled(location, contact, since, now));
            let message = job
                .outgoing()
                .map_err(|e| ReconcileError::Queue(QueueError::new(e)))?;
            Ok(Some(message))
        }
    }
}

/// The same tags, in any order and case (GHL's tags compare case-insensitively).
fn same_tags(a: &[String], b: &[String]) -> bool {
    let within = |x: &[String], y: &[String]| {
        x.iter()
            .all(|t| y.iter().any(|u| u.eq_ignore_ascii_case(t)))
    };
    within(a, b) && within(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pace_is_the_share_of_ghls_window() {
        let settings = ReconcileSettings::default();
        assert_eq!(settings.pace(), Duration::from_millis(500));
        let all = ReconcileSettings {
            share: 1.0,
            ..settings
        };
        assert_eq!(all.pace(), Duration::from_millis(100));
    }

    #[test]
    fn tags_compare_as_sets_without_case() {
        let tags = |t: &[&str]| t.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(same_tags(&tags(&["VIP", "lead"]), &tags(&["lead", "vip"])));
        assert!(!same_tags(&tags(&["vip"]), &tags(&["vip", "lead"])));
        assert!(!same_tags(&tags(&["vip", "lead"]), &tags(&["vip"])));
        assert!(same_tags(&[], &[]));
    }

    #[tokio::test]
    async fn a_run_takes_the_location_reconciled_longest_ago_first_and_no_agencys_own_set() {
        use crate::ports::state::MemoryState;
        let state = MemoryState::default();
        let ran = |hours_ago: i64| Reconciled {
            watermark: Utc::now() - chrono::Duration::hours(hours_ago),
            at: Utc::now() - chrono::Duration::hours(hours_ago),
            scanned: 0,
            changed: 0,
            baselined: 0,
            opportunities: 0,
            seeded: None,
        };
        keep(&state, "recent", &ran(1)).await.expect("kept");
        keep(&state, "older", &ran(5)).await.expect("kept");
        let mint = format!("{MINT_PREFIX}minted");
        let day = Duration::from_secs(86_400);
        state.set_record(&mint, "{}", day).await.expect("kept");
        let names = [
            "ghl/recent",
            "ghl/older",
            "ghl/never",
            "ghl/company-agency1",
        ]
        .map(str::to_owned);
        let order = locations_in_turn(&names, "ghl/", &state)
            .await
            .expect("listed");
        // Never reconciled first (by name), then the oldest run.
        assert_eq!(order, ["minted", "never", "older", "recent"]);
    }
}
