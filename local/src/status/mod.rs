//! The status page's figures, read from the store: the journal for what happened
//! (webhooks, events, dead letters, audience rows, partner calls), the queues for
//! what waits, the state for breakers and reconciliation. [`page`] renders them.

pub mod page;
pub mod quality;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ghl_capi::hold::breaker::{Breaker, OPEN_AFTER};
use ghl_capi::jobs::LetterMessage;
use ghl_capi::pull::reconcile::{Reconciled, last_run};
use ghl_capi::pull::seed::{Seeded, seeded};
use ghl_capi::telemetry::percentile;
use rusqlite::params;

use crate::ports::LocalState;
use crate::store::{DEAD, Store, StoreError};
use crate::store::{DISPATCH, ENRICH};

/// Enrichment's line for a reconciliation's finds (a job queued by polling).
const MISSED: &str = "reconciliation found changes no webhook delivered";
/// A webhook queued for the pipeline: new, verified (parsed or kept for a letter).
const ACCEPTED: &str = "path = '/webhooks/ghl' AND outcome IN ('accepted', 'accepted_unparsed')";
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Bars of the last hour's charts (5 minutes each) and the last day's (1 hour).
const HOUR_BARS: i64 = 12;
const DAY_BARS: i64 = 24;

/// Why the figures could not be read (the page answers 503, and logs it).
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read a location's state: {0}")]
    State(#[from] ghl_capi::ports::state::StateError),
}

/// The state record saying which mapping version runs, and the last refused:
/// the status page shows it.
pub const MAPPING_RECORD: &str = "mapping#running";

/// What [`MAPPING_RECORD`] holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MappingState {
    pub version: String,
    pub since: DateTime<Utc>,
    /// A version that did not pass its checks, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<(String, String)>,
}

/// Counts over the last hour and the last day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub hour: u64,
    pub day: u64,
}

/// Figures of one kind, by a name (an outcome, a reason, a pixel), largest first.
pub type ByName = Vec<(String, Window)>;

/// A series of counts, oldest bar first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Series {
    pub hour: Vec<u64>,
    pub day: Vec<u64>,
}

/// A partner's calls over the last hour.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Calls {
    pub count: u64,
    pub failed: u64,
    pub p50_ms: Option<u64>,
    pub p99_ms: Option<u64>,
}

/// A queue's backlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    pub queue: &'static str,
    pub depth: u64,
    pub oldest_ms: Option<i64>,
}

/// A dead letter, as the page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    pub id: i64,
    pub code: String,
    pub reason: String,
    pub source: String,
    pub at_ms: i64,
}

/// A location's catching up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationState {
    pub location_id: String,
    pub seeded: Option<Seeded>,
    pub last_run: Option<Reconciled>,
    /// Changes reconciliation found in the last day that no webhook delivered.
    pub missed_day: u64,
}

/// Everything the page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub now: DateTime<Utc>,
    /// Webhooks by outcome; those queued (new, not repeats); those refused.
    pub webhooks: ByName,
    pub accepted: Window,
    pub refused: Window,
    pub built: ByName,
    pub sent: ByName,
    pub dead_lettered: ByName,
    pub audience_rows: ByName,
    pub accepted_series: Series,
    pub sent_series: Series,
    pub dead_series: Series,
    pub lag_p50_s: Option<u64>,
    pub lag_p99_s: Option<u64>,
    pub graph: Calls,
    pub ghl: Calls,
    pub backlog: Vec<Backlog>,
    pub letters: Vec<Letter>,
    pub breakers: Vec<(String, Breaker)>,
    pub locations: Vec<LocationState>,
    /// The mapping version `serve` runs, and the last it refused.
    pub mapping: Option<MappingState>,
    /// Each pixel's match quality over the last week.
    pub quality: Vec<quality::PixelQuality>,
    /// The report's lines of the last four weeks, every location.
    pub report: Vec<ghl_capi::quality::report::Line>,
}

impl Status {
    /// Reads the figures at `now`; `locations` are those served (tokens, pixels),
    /// `pixels` the mapping's.
    pub async fn read(
        store: &Store,
        locations: &[String],
        pixels: &[quality::Served],
        now: DateTime<Utc>,
    ) -> Result<Status, StatusError> {
        let at = now.timestamp_millis();
        let mut status = {
            let db = store.lock();
            let journal = Journal { db: &db, now: at };
            let webhooks = journal.by("request", "outcome", "path = '/webhooks/ghl'")?;
            let refused = journal.count(
                "request",
                "path = '/webhooks/ghl' AND (status < 200 OR status > 299)",
            )?;
            let accepted = journal.count("request", ACCEPTED)?;
            Status {
                now,
                webhooks,
                accepted,
                refused,
                built: journal.by("event built", "event_name", "1")?,
                sent: journal.by("event sent", "pixel", "1")?,
                dead_lettered: journal.by("dead letter", "code", "1")?,
                audience_rows: journal.sum(
                    "audience request",
                    "operation",
                    "rows",
                    "status = 200",
                )?,
                accepted_series: journal.series("request", ACCEPTED)?,
                sent_series: journal.series("event sent", "1")?,
                dead_series: journal.series("dead letter", "1")?,
                lag_p50_s: None,
                lag_p99_s: None,
                graph: journal.calls("capi request")?,
                ghl: journal.calls("ghl call")?,
                backlog: [ENRICH, DISPATCH, DEAD]
                    .into_iter()
                    .map(|queue| backlog(&db, queue, at))
                    .collect::<Result<_, _>>()?,
                letters: Vec::new(),
                breakers: Vec::new(),
                locations: Vec::new(),
                mapping: None,
                quality: Vec::new(),
                report: Vec::new(),
            }
            .with_lag(journal.values("event sent", "lag_seconds", DAY_MS)?)
        };
        status.letters = letters(store)?;
        status.quality = quality::read(store, pixels, now).await?;
        status.report = quality::report(store, now).await?;
        let state = LocalState(store.clone());
        status.mapping = ghl_capi::ports::state::StateStore::record(&state, MAPPING_RECORD)
            .await?
            .and_then(|text| serde_json::from_str(&text).ok());
        status.breakers = store
            .records_under("breaker#")?
            .into_iter()
            .filter_map(|(key, text)| {
                let name = key.strip_prefix("breaker#")?.to_owned();
                Some((name, serde_json::from_str(&text).ok()?))
            })
            .collect();
        for location in locations {
            let missed = {
                let db = store.lock();
                let journal = Journal { db: &db, now: at };
                journal.sum_for(MISSED, "changes", location)?
            };
            status.locations.push(LocationState {
                location_id: location.clone(),
                // Unreadable is no answer: the page fails, rather than say
                // "not seeded" of a location whose state it could not read.
                seeded: seeded(&state, location).await?,
                last_run: last_run(&state, location).await?,
                missed_day: missed,
            });
        }
        Ok(status)
    }

    fn with_lag(mut self, mut lags: Vec<u64>) -> Self {
        lags.sort_unstable();
        self.lag_p50_s = percentile(&lags, 50);
        self.lag_p99_s = percentile(&lags, 99);
        self
    }

    /// Whether a breaker is open (work held) rather than counting failures.
    pub fn open(breaker: &Breaker) -> bool {
        breaker.failures >= OPEN_AFTER
    }
}

/// Queries over the journal's last day. `filter` is SQL over the columns below,
/// written here, never from input.
struct Journal<'c> {
    db: &'c rusqlite::Connection,
    now: i64,
}

/// The journal's rows of one message in the last day (its counted fields are
/// columns of their own: the journal's schema).
const ROWS: &str = "SELECT * FROM journal WHERE message = ?1 AND at >= ?2";

impl Journal<'_> {
    fn by(&self, message: &str, name: &str, filter: &str) -> Result<ByName, StoreError> {
        self.sum(message, name, "1", filter)
    }

    /// Per value of `name`: the sum of `value` (`1`: a count) in each window.
    fn sum(
        &self,
        message: &str,
        name: &str,
        value: &str,
        filter: &str,
    ) -> Result<ByName, StoreError> {
        let sql = format!(
            "SELECT coalesce({name}, '-'), coalesce(sum(CASE WHEN at >= ?3 THEN {value} END), 0),
                    coalesce(sum({value}), 0)
             FROM ({ROWS}) WHERE {filter} GROUP BY 1 ORDER BY 3 DESC, 1"
        );
        let mut select = self.db.prepare_cached(&sql)?;
        let rows = select.query_map(
            params![message, self.now - DAY_MS, self.now - HOUR_MS],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    Window {
                        hour: row.get::<_, i64>(1)?.max(0) as u64,
                        day: row.get::<_, i64>(2)?.max(0) as u64,
                    },
                ))
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn count(&self, message: &str, filter: &str) -> Result<Window, StoreError> {
        let all = self.sum(message, "'all'", "1", filter)?;
        Ok(all.first().map(|(_, w)| *w).unwrap_or_default())
    }

    /// The day's sum of `value` for one location.
    fn sum_for(&self, message: &str, value: &str, location: &str) -> Result<u64, StoreError> {
        let sql = format!("SELECT coalesce(sum({value}), 0) FROM ({ROWS}) WHERE location_id = ?3");
        let sum: i64 =
            self.db
                .query_row(&sql, params![message, self.now - DAY_MS, location], |row| {
                    row.get(0)
                })?;
        Ok(sum.max(0) as u64)
    }

    fn series(&self, message: &str, filter: &str) -> Result<Series, StoreError> {
        let bars = |span: i64, count: i64| -> Result<Vec<u64>, StoreError> {
            let width = span / count;
            let start = self.now - span;
            let sql = format!(
                "SELECT (at - ?3) / ?4, count(*) FROM ({ROWS}) WHERE at >= ?3 AND {filter} GROUP BY 1"
            );
            let mut bars = vec![0; count as usize];
            let mut select = self.db.prepare_cached(&sql)?;
            let rows = select.query_map(params![message, start, start, width], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
            })?;
            for row in rows {
                let (bar, n) = row?;
                if let Some(slot) = bars.get_mut(bar.clamp(0, count - 1) as usize) {
                    *slot += n.max(0) as u64;
                }
            }
            Ok(bars)
        };
        Ok(Series {
            hour: bars(HOUR_MS, HOUR_BARS)?,
            day: bars(DAY_MS, DAY_BARS)?,
        })
    }

    /// `field`'s values over the last `span`.
    fn values(&self, message: &str, field: &str, span: i64) -> Result<Vec<u64>, StoreError> {
        let sql = format!("SELECT {field} FROM ({ROWS}) WHERE {field} IS NOT NULL");
        let mut select = self.db.prepare_cached(&sql)?;
        let rows = select.query_map(params![message, self.now - span], |row| {
            row.get::<_, i64>(0)
        })?;
        Ok(rows
            .filter_map(Result::ok)
            .map(|v| v.max(0) as u64)
            .collect())
    }

    /// A partner's calls over the last hour: how many, how many failed, latency.
    fn calls(&self, message: &str) -> Result<Calls, StoreError> {
        let sql = format!(
            "SELECT count(*), coalesce(sum(CASE WHEN status BETWEEN 200 AND 299 THEN 0 ELSE 1 END), 0)
             FROM ({ROWS})"
        );
        let (count, failed): (i64, i64) =
            self.db
                .query_row(&sql, params![message, self.now - HOUR_MS], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?;
        let mut latency = self.values(message, "latency_ms", HOUR_MS)?;
        latency.sort_unstable();
        Ok(Calls {
            count: count.max(0) as u64,
            failed: failed.max(0) as u64,
            p50_ms: percentile(&latency, 50),
            p99_ms: percentile(&latency, 99),
        })
    }
}

fn backlog(
    db: &rusqlite::Connection,
    queue: &'static str,
    now: i64,
) -> Result<Backlog, StoreError> {
    let (depth, oldest): (i64, Option<i64>) = db.query_row(
        "SELECT count(*), min(sent_at) FROM messages WHERE queue = ?1",
        params![queue],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    Ok(Backlog {
        queue,
        depth: depth.max(0) as u64,
        oldest_ms: oldest.map(|sent| (now - sent).max(0)),
    })
}

/// The dead letters, newest first; a body that is no letter is listed by its id.
fn letters(store: &Store) -> Result<Vec<Letter>, StoreError> {
    let mut letters: Vec<Letter> = store
        .list(DEAD)?
        .into_iter()
        .map(
            |stored| match serde_json::from_str::<LetterMessage>(&stored.body) {
                Ok(LetterMessage { dead_letter, .. }) => Letter {
                    id: stored.id,
                    code: dead_letter.code,
                    reason: dead_letter.reason,
                    source: dead_letter.source,
                    at_ms: stored.sent_at_ms,
                },
                Err(_) => Letter {
                    id: stored.id,
                    code: "unreadable".to_owned(),
                    reason: "not a dead letter this build reads".to_owned(),
                    source: String::new(),
                    at_ms: stored.sent_at_ms,
                },
            },
        )
        .collect();
    letters.reverse();
    Ok(letters)
}

/// The top causes of `letters`: each code with its count, largest first.
pub fn causes(letters: &[Letter]) -> Vec<(&str, usize)> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for letter in letters {
        *counts.entry(&letter.code).or_default() += 1;
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    counts
}
