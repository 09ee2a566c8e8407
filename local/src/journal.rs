//! The audit journal: local mode's copy of the pipeline's audit lines, kept in the
//! store for `ghl-capi trace` and the status page. It is fed by the same log events
//! the functions write to CloudWatch (so a trace reads the same facts in both
//! modes), keeps only their ids, codes and figures (a fixed list of fields: never a
//! contact's data or a token), and forgets entries older than its retention.
//!
//! Writing it never slows the pipeline or fails it: events go through a bounded
//! channel to one writer, which stores them in batches; an entry that finds the
//! channel full is counted (`JournalDropped`) and not kept.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ghl_capi::telemetry::DETAIL;
use rusqlite::params;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, watch};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use crate::store::{Store, StoreError};

/// How long entries are kept unless told otherwise (`--journal-days`).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Entries waiting for the writer; beyond this they are dropped and counted.
const BACKLOG: usize = 20_000;
/// How often entries past the retention are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Any of these makes an event a journal entry: it is about some webhook, event,
/// contact or location, or is a call to a pixel or audience.
const IDS: [&str; 8] = [
    "webhook_id",
    "source",
    "job",
    "event_id",
    "contact_id",
    "location_id",
    "dataset_id",
    "audience_id",
];
/// The other fields kept: codes and figures. A field in neither list is not kept.
const FIGURES: [&str; 39] = [
    "method",
    "path",
    "status",
    "outcome",
    "kind",
    "trigger",
    "triggers",
    "rule",
    "unmet",
    "event_name",
    "identifiers",
    "score",
    "lacking",
    "wrote",
    "pixel",
    "mapping",
    "fbtrace_id",
    "events_received",
    "lag_seconds",
    "latency_ms",
    "events",
    "code",
    "reason",
    "stage",
    "attempts",
    "first_failure",
    "after_ms",
    "receives",
    "audience",
    "operation",
    "rows",
    "rows_added",
    "rows_removed",
    "changes",
    "tags",
    "partner",
    "name",
    "error",
    "problem",
];

fn kept(field: &str) -> bool {
    IDS.contains(&field) || FIGURES.contains(&field)
}

/// What a trace follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Contact {
        contact_id: String,
        location_id: Option<String>,
    },
    Webhook(String),
    Event(String),
}

impl Subject {
    /// The journal's column naming it, and its id.
    fn column(&self) -> (&'static str, &str) {
        match self {
            Subject::Contact { contact_id, .. } => ("contact_id", contact_id),
            Subject::Webhook(id) => ("webhook_id", id),
            Subject::Event(id) => ("event_id", id),
        }
    }

    /// Whether `entry` names the subject itself.
    fn named_by(&self, entry: &Entry) -> bool {
        match self {
            Subject::Contact {
                contact_id,
                location_id,
            } => {
                entry.text("contact_id") == Some(contact_id.as_str())
                    && location_id
                        .as_deref()
                        .is_none_or(|l| entry.text("location_id").is_none_or(|at| at == l))
            }
            Subject::Webhook(id) => entry.webhook_id() == Some(id.as_str()),
            Subject::Event(id) => entry.text("event_id") == Some(id.as_str()),
        }
    }

    /// The journey in `entries`, oldest first: the entries naming the subject,
    /// and every entry of the webhooks those name (what each webhook became: its
    /// rules, events, Meta's answers, retries, dead letters). For an event, its
    /// webhook's entries about other events are left out.
    pub fn journey(&self, mut entries: Vec<Entry>) -> Vec<Entry> {
        let webhooks: HashSet<String> = entries
            .iter()
            .filter(|e| self.named_by(e))
            .filter_map(|e| e.webhook_id().map(str::to_owned))
            .collect();
        entries.retain(|e| {
            let about = self.named_by(e) || e.webhook_id().is_some_and(|w| webhooks.contains(w));
            let other_event = matches!(self, Subject::Event(id)
                if e.text("event_id").is_some_and(|other| other != id));
            about && !other_event
        });
        entries.sort_by_key(|e| e.at_ms);
        entries
    }
}

/// One audit line, as kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub at_ms: i64,
    pub level: &'static str,
    pub message: String,
    pub fields: Map<String, Value>,
}

impl Entry {
    /// The webhook (or posted conversion) it is about: `webhook_id`, else the
    /// `source` or `job` the later stages name it by.
    pub fn webhook_id(&self) -> Option<&str> {
        ["webhook_id", "source", "job"]
            .iter()
            .find_map(|k| self.text(k))
    }

    /// An entry from a JSON log line as the functions write it (`level`, and
    /// `fields` with the `message`), keeping what the journal keeps.
    pub fn from_log_line(line: &Value, at_ms: i64) -> Option<Entry> {
        let fields = line.get("fields")?.as_object()?;
        Some(Entry {
            at_ms,
            level: level_name(line.get("level").and_then(Value::as_str).unwrap_or("INFO")),
            message: fields.get("message")?.as_str()?.to_owned(),
            fields: fields
                .iter()
                .filter(|(k, _)| kept(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }

    /// A field as text, if it is text.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.fields.get(key)?.as_str().filter(|s| !s.is_empty())
    }
}

/// The [`Layer`] that copies audit lines into the journal's channel.
#[derive(Debug)]
pub struct JournalLayer {
    sender: mpsc::Sender<Entry>,
    dropped: Arc<AtomicU64>,
}

/// The receiving end: [`Inbox::write`] stores what the layer sends.
#[derive(Debug)]
pub struct Inbox {
    receiver: mpsc::Receiver<Entry>,
    dropped: Arc<AtomicU64>,
}

/// A layer and the inbox it fills.
pub fn channel() -> (JournalLayer, Inbox) {
    let (sender, receiver) = mpsc::channel(BACKLOG);
    let dropped = Arc::new(AtomicU64::new(0));
    (
        JournalLayer {
            sender,
            dropped: Arc::clone(&dropped),
        },
        Inbox { receiver, dropped },
    )
}

#[derive(Default)]
struct Fields {
    message: String,
    kept: Map<String, Value>,
}

impl Fields {
    fn keep(&mut self, field: &Field, value: Value) {
        if kept(field.name()) {
            self.kept.insert(field.name().to_owned(), value);
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.keep(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.keep(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.keep(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.keep(field, Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            // `%error` and friends arrive here, as their Display.
            self.keep(field, Value::from(format!("{value:?}")));
        }
    }
}

/// Whether the journal wants events of `metadata`: the pipeline's, at `info` and
/// above, and its audit detail at any level ([`DETAIL`]: the functions leave it
/// out of their logs, `trace` and the status page read it here). Given as the
/// layer's own filter (`Layer::with_filter`), it keeps every other callsite (a
/// dependency's `trace!`) disabled for the journal.
pub fn wanted(metadata: &Metadata<'_>) -> bool {
    let target = metadata.target();
    target == DETAIL || (*metadata.level() <= Level::INFO && target.starts_with("ghl_capi"))
}

impl<S: Subscriber> Layer<S> for JournalLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let metadata = event.metadata();
        if !wanted(metadata) {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        if !IDS.iter().any(|id| fields.kept.contains_key(*id)) {
            return;
        }
        let entry = Entry {
            at_ms: chrono::Utc::now().timestamp_millis(),
            level: metadata.level().as_str(),
            message: fields.message,
            fields: fields.kept,
        };
        if self.sender.try_send(entry).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(DROPPED).increment(1);
        }
    }
}

/// A stored level's name, as `tracing` spells it.
fn level_name(text: &str) -> &'static str {
    [Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG]
        .into_iter()
        .map(|l| l.as_str())
        .find(|l| *l == text)
        .unwrap_or("INFO")
}

/// At most this many entries are written per transaction, so the journal holds
/// the store for a moment only, never a webhook's commit for long.
const JOURNAL_BATCH: usize = 200;

/// Journal entries not kept because the writer fell behind.
pub const DROPPED: &str = "JournalDropped";

impl Inbox {
    /// Stores entries as they come, a batch per transaction, and deletes those
    /// older than `retention`, until `stopped`; then stores what is left.
    pub async fn write(
        mut self,
        store: Store,
        retention: Duration,
        mut stopped: watch::Receiver<bool>,
    ) {
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                got = self.receiver.recv_many(&mut batch, JOURNAL_BATCH) => {
                    if got == 0 {
                        break;
                    }
                    store_batch(&store, &mut batch);
                }
                _ = prune.tick() => {
                    let before = chrono::Utc::now().timestamp_millis() - retention.as_millis() as i64;
                    if let Err(e) = store.prune_journal(before) {
                        tracing::warn!(error = %e, "cannot delete old journal entries");
                    }
                }
                _ = stopped.changed() => break,
            }
        }
        // What came before the stop is kept too.
        while let Ok(entry) = self.receiver.try_recv() {
            batch.push(entry);
        }
        store_batch(&store, &mut batch);
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "journal entries were not kept: the writer fell behind"
            );
        }
    }
}

fn store_batch(store: &Store, batch: &mut Vec<Entry>) {
    if batch.is_empty() {
        return;
    }
    if let Err(e) = store.append_journal(batch) {
        // The journal is an audit copy: the pipeline goes on without it.
        metrics::counter!(DROPPED).increment(batch.len() as u64);
        tracing::warn!(entries = batch.len(), error = %e, "cannot store journal entries");
    }
    batch.clear();
}

impl Store {
    /// Appends `entries`, in one transaction.
    pub fn append_journal(&self, entries: &[Entry]) -> Result<(), StoreError> {
        let mut db = self.lock();
        let tx = db.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO journal (at, level, message, webhook_id, event_id, contact_id, location_id, fields)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for entry in entries {
                insert.execute(params![
                    entry.at_ms,
                    entry.level,
                    entry.message,
                    entry.webhook_id(),
                    entry.text("event_id"),
                    entry.text("contact_id"),
                    entry.text("location_id"),
                    ghl_capi::ports::text(&entry.fields),
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The entries that may be about `subject` since `since_ms`: those naming it,
    /// and every entry of the webhooks they name. [`Subject::journey`] picks.
    pub fn journal_of(&self, subject: &Subject, since_ms: i64) -> Result<Vec<Entry>, StoreError> {
        let db = self.lock();
        let (column, id) = subject.column();
        let mut webhooks: Vec<String> = db
            .prepare(&format!(
                "SELECT DISTINCT webhook_id FROM journal
                 WHERE {column} = ?1 AND at >= ?2 AND webhook_id IS NOT NULL"
            ))?
            .query_map(params![id, since_ms], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        webhooks.push(id.to_owned());
        let mut select = db.prepare(&format!(
            "SELECT at, level, message, fields FROM journal
             WHERE at >= ?2 AND ({column} = ?1 OR webhook_id IN (SELECT value FROM json_each(?3)))
             ORDER BY at, id"
        ))?;
        let listed = ghl_capi::ports::text(&webhooks);
        let rows = select.query_map(params![id, since_ms, listed], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
            ))
        })?;
        let mut entries = Vec::new();
        for row in rows {
            let (at_ms, level, message, fields) = row?;
            let fields = match serde_json::from_str(&fields) {
                Ok(Value::Object(map)) => map,
                _ => Map::new(),
            };
            entries.push(Entry {
                at_ms,
                level: level_name(&level),
                message,
                fields,
            });
        }
        Ok(entries)
    }

    /// Deletes entries older than `before_ms`.
    pub fn prune_journal(&self, before_ms: i64) -> Result<usize, StoreError> {
        Ok(self
            .lock()
            .execute("DELETE FROM journal WHERE at < ?1", params![before_ms])?)
    }
}
