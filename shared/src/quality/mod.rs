//! Match quality as the pipeline itself records it: for each pixel, each day and
//! each event name, how many events Meta acknowledged, their identifier coverage
//! score ([`crate::capi::score`]) and how many carried each key. Meta scores CRM
//! events for no one (`reference/meta-capi.md` §5.2); these counters are what
//! `verify`, the status page and readiness read instead.
//!
//! - this module: the counters, written once per pixel per dispatch batch
//!   ([`tally`], [`record`]) and read back by day ([`read`]);
//! - [`advice`]: what in GHL fills each key an event lacks;
//! - [`readiness`]: the record judged against Meta's Conversion Leads
//!   requirements;
//! - [`report`]: per location, week and stage, for a person to read.

pub mod advice;
pub mod readiness;
pub mod report;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, Utc};

use crate::capi::ServerEvent;
use crate::capi::score::{Coverage, Key, Score, WEIGHTS};
use crate::jobs::DispatchJob;
use crate::mapping::Pixel;
use crate::ports::state::{Added, Counts, StateError, StateStore};

/// How long a day's counters are kept: more than a year, so a report can compare
/// a season with the last.
pub const KEPT_FOR: Duration = Duration::from_secs(400 * 24 * 3600);

/// What every key of these counters starts with.
pub const PREFIX: &str = "quality#";

/// The key of `dataset_id`'s counters on `day` (by dataset, not by the mapping's
/// name for it, so a renamed pixel keeps its history).
fn key(dataset_id: &str, day: NaiveDate) -> String {
    format!("{PREFIX}{dataset_id}#{day}")
}

/// One event name's counters on one day (or summed over days).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Events Meta acknowledged, test events included.
    pub sent: u64,
    /// Of those, sent with a test event code: Meta's optimisation ignores them.
    pub test: u64,
    /// Their scores, summed, in hundredths of a point.
    pub points: u64,
    /// How many carried each key.
    pub has: BTreeMap<Key, u64>,
    /// The contacts they were about, each once (kept by the report only).
    pub contacts: u64,
}

impl Tally {
    pub fn score(&self) -> Score {
        Score::average(self.points, self.sent)
    }

    /// The share (0–100 %) of its events that lack `key`, rounded.
    pub fn lacking(&self, key: Key) -> u64 {
        match self.sent {
            0 => 0,
            sent => {
                let has = self.has.get(&key).copied().unwrap_or(0).min(sent);
                ((sent - has) * 100 + sent / 2) / sent
            }
        }
    }

    pub fn add(&mut self, other: &Tally) {
        self.sent += other.sent;
        self.test += other.test;
        self.points += other.points;
        self.contacts += other.contacts;
        for (key, n) in &other.has {
            *self.has.entry(*key).or_default() += n;
        }
    }
}

/// Each event name's tally.
pub type ByEvent = BTreeMap<String, Tally>;

/// The counters of `events`, acknowledged by Meta together (sent with a test
/// event code when `test`), by event name.
pub fn counted<'e>(events: impl IntoIterator<Item = &'e ServerEvent>, test: bool) -> ByEvent {
    let mut by_event = ByEvent::new();
    for event in events {
        let coverage = Coverage::of(&event.user_data);
        let tally = by_event.entry(event.event_name.clone()).or_default();
        tally.sent += 1;
        tally.test += u64::from(test);
        tally.points += u64::from(coverage.score().hundredths());
        for key in coverage.keys() {
            *tally.has.entry(key).or_default() += 1;
        }
    }
    by_event
}

/// Adds `events`, which Meta acknowledged for `dataset_id` at `now`, to that day's
/// counters: one write however many events.
pub async fn record(
    state: &impl StateStore,
    dataset_id: &str,
    by_event: &ByEvent,
    now: DateTime<Utc>,
) -> Result<(), StateError> {
    let counts: Vec<(String, u64)> = by_event
        .iter()
        .flat_map(|(name, tally)| {
            let fixed = [
                (format!("{name}|sent"), tally.sent),
                (format!("{name}|test"), tally.test),
                (format!("{name}|points"), tally.points),
            ];
            let has = tally
                .has
                .iter()
                .map(move |(key, n)| (format!("{name}|has:{}", key.wire()), *n));
            fixed.into_iter().chain(has)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    if counts.is_empty() {
        return Ok(());
    }
    let added = Added {
        counts,
        members: Vec::new(),
    };
    state
        .add_counts(&key(dataset_id, now.date_naive()), &added, KEPT_FOR)
        .await
}

/// Adds the events Meta took for `pixel` (`sent`) to its day's counters and each
/// location's week in the report, and to the metrics. A failure to write them is
/// logged and counted, never more: the events were sent.
pub async fn tally(
    state: &impl StateStore,
    pixel: &Pixel,
    sent: &[&DispatchJob],
    now: DateTime<Utc>,
) {
    let test = pixel.test_event_code.is_some();
    let by_event = counted(sent.iter().map(|job| &job.event), test);
    for (event_name, tally) in &by_event {
        crate::telemetry::scored(&pixel.name, event_name, tally.sent, tally.points);
    }
    let mut lost = record(state, &pixel.dataset_id, &by_event, now).await.err();
    let mut locations: Vec<&str> = sent.iter().map(|job| job.location_id.as_str()).collect();
    locations.sort_unstable();
    locations.dedup();
    for location in locations {
        let events = (sent.iter())
            .filter(|job| job.location_id == location)
            .map(|job| (&job.event, job.contact_id.as_str()));
        if let Err(e) = report::record(state, location, events, test, now).await {
            lost = Some(e);
        }
    }
    if let Some(e) = lost {
        crate::telemetry::tally_lost();
        tracing::warn!(pixel = pixel.name, events = sent.len(), error = %crate::error::chain(&e), "cannot record the sent events' identifier coverage");
    }
}

/// Each day's tallies of `dataset_id` from `first` to `last` (both included), in
/// order; a day with nothing sent is there, empty.
pub async fn read(
    state: &impl StateStore,
    dataset_id: &str,
    first: NaiveDate,
    last: NaiveDate,
) -> Result<Vec<(NaiveDate, ByEvent)>, StateError> {
    let days: Vec<NaiveDate> = first.iter_days().take_while(|d| *d <= last).collect();
    let keys: Vec<String> = days.iter().map(|d| key(dataset_id, *d)).collect();
    let mut kept = state.counts_of(&keys).await?;
    Ok(days
        .into_iter()
        .zip(keys)
        .map(|(day, key)| (day, parsed(kept.remove(&key).unwrap_or_default())))
        .collect())
}

/// The datasets with counters kept (an operator's listing: on DynamoDB, a scan).
pub async fn datasets(state: &impl StateStore) -> Result<Vec<String>, StateError> {
    let mut datasets: Vec<String> = (state.counted_under(PREFIX).await?.iter())
        .filter_map(|key| Some(key.strip_prefix(PREFIX)?.rsplit_once('#')?.0.to_owned()))
        .collect();
    datasets.dedup();
    Ok(datasets)
}

/// Counters by name back into tallies; names of another shape are passed over.
fn parsed(counts: Counts) -> ByEvent {
    let mut by_event = ByEvent::new();
    for (name, n) in counts {
        let Some((event, counter)) = name.rsplit_once('|') else {
            continue;
        };
        let tally = by_event.entry(event.to_owned()).or_default();
        match counter {
            "sent" => tally.sent += n,
            "test" => tally.test += n,
            "points" => tally.points += n,
            "contacts" => tally.contacts += n,
            other => {
                if let Some(key) = other.strip_prefix("has:").and_then(Key::of_wire) {
                    *tally.has.entry(key).or_default() += n;
                }
            }
        }
    }
    by_event
}

/// The most recent events of `dataset_id`: whole days back from `today`, until they
/// hold at least `wanted` events or `days_back` days are read. The tallies by
/// event name, and the days they cover.
pub async fn latest(
    state: &impl StateStore,
    dataset_id: &str,
    wanted: u64,
    today: NaiveDate,
    days_back: u64,
) -> Result<(ByEvent, u64), StateError> {
    let first = today
        .checked_sub_days(Days::new(days_back.saturating_sub(1)))
        .unwrap_or(today);
    let mut days = read(state, dataset_id, first, today).await?;
    days.reverse();
    let mut summed = ByEvent::new();
    let mut covered = 0;
    for (_, by_event) in days {
        if summed.values().map(|t| t.sent).sum::<u64>() >= wanted {
            break;
        }
        covered += 1;
        for (name, tally) in by_event {
            summed.entry(name).or_default().add(&tally);
        }
    }
    Ok((summed, covered))
}

/// Every key a tally weighs, strongest first, with the share of events lacking
/// it: what a report lists.
pub fn gaps(tally: &Tally) -> impl Iterator<Item = (Key, u64)> + '_ {
    WEIGHTS
        .iter()
        .map(move |(key, _)| (*key, tally.lacking(*key)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::state::MemoryState;

    fn lead(email: bool, phone: bool) -> ServerEvent {
        let mut event = ServerEvent {
            event_name: "Lead".into(),
            ..ServerEvent::default()
        };
        if email {
            event
                .user_data
                .add(crate::normalize::Field::Email, "a@b.co", None);
        }
        if phone {
            event
                .user_data
                .add(crate::normalize::Field::Phone, "+16505551212", None);
        }
        event
    }

    #[tokio::test]
    async fn a_days_counters_add_up_across_batches_and_read_back_by_event_name() {
        let state = MemoryState::default();
        let now: DateTime<Utc> = "2026-12-06T10:00:00Z".parse().expect("time");
        let first = [lead(true, true), lead(true, false)];
        record(&state, "123", &counted(&first, false), now)
            .await
            .expect("recorded");
        let second = [lead(false, true)];
        record(&state, "123", &counted(&second, true), now)
            .await
            .expect("recorded");
        let today = now.date_naive();
        let days = read(&state, "123", today.pred_opt().expect("day"), today)
            .await
            .expect("read");
        assert_eq!(days.len(), 2);
        assert!(days[0].1.is_empty(), "nothing the day before");
        let tally = &days[1].1["Lead"];
        assert_eq!((tally.sent, tally.test), (3, 1));
        assert_eq!(tally.points, 350 + 200 + 150);
        assert_eq!(tally.lacking(Key::Phone), 33);
        assert_eq!(tally.lacking(Key::Email), 33);
        assert_eq!(tally.lacking(Key::LeadId), 100);
        assert_eq!(tally.score().to_string(), "2.3");
    }

    #[tokio::test]
    async fn the_latest_events_are_whole_days_back_until_there_are_enough() {
        let state = MemoryState::default();
        let day = |d: u32| -> DateTime<Utc> {
            format!("2026-12-{d:02}T12:00:00Z").parse().expect("time")
        };
        for (d, n) in [(1, 5), (3, 2), (5, 2)] {
            let events: Vec<ServerEvent> = (0..n).map(|_| lead(true, false)).collect();
            record(&state, "123", &counted(&events, false), day(d))
                .await
                .expect("recorded");
        }
        let today = day(6).date_naive();
        let (tallies, days) = latest(&state, "123", 3, today, 28).await.expect("read");
        assert_eq!(
            (tallies["Lead"].sent, days),
            (4, 4),
            "the 6th back to the 3rd"
        );
        let (tallies, days) = latest(&state, "123", 100, today, 3).await.expect("read");
        assert_eq!(
            (tallies["Lead"].sent, days),
            (2, 3),
            "no further back than asked"
        );
    }
}
