//! The embedded durable store: one SQLite file in WAL mode. It holds the queues
//! (with SQS's semantics: visibility timeouts, FIFO groups, five-minute
//! deduplication, a dead-letter queue after too many receives) and the state store.
//!
//! What is sent to a queue is committed to the disk (`synchronous = FULL`) before
//! its sender is answered, in commits shared by the senders of the moment
//! ([`commit`]): acknowledged means kept, through a kill or a power cut. The rest
//! (receives, deletes, state, the journal) commits without a sync of its own
//! (`NORMAL`): a kill loses none of it, and a power cut only what followed the last
//! synced send, the WAL being kept in order: the store is then as it was a moment
//! earlier, and the work of that moment is done again (each step is idempotent, and
//! Meta drops a repeated event id).

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::DateTime;
use ghl_capi::jobs::{EnrichJob, History, LetterMessage};
use ghl_capi::ops::redrive::{GaveUp, read};
use ghl_capi::ports::queue::{Outgoing, Record};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

mod checkpoint;
mod commit;
mod state;

/// The queues' names: enrichment's, dispatch's and the dead letters'.
pub const ENRICH: &str = "enrich";
pub const DISPATCH: &str = "dispatch";
pub const DEAD: &str = "dead";
/// Commits synced to the disk: sends accepted ÷ this is how many shared a sync.
pub const SYNCS: &str = "StoreSyncs";
/// How long a FIFO deduplication id is remembered, as on SQS.
const DEDUP_WINDOW_MS: i64 = 5 * 60 * 1000;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("local store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("local store: cannot keep {path} to its owner alone: {source}")]
    Private {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("local store: a shared commit failed: {0}")]
    Commit(Arc<rusqlite::Error>),
    #[error("local store: cannot start a thread of its own")]
    Committer(#[source] std::io::Error),
    #[error("local store: closed")]
    Stopped,
}

/// The store, shared by the server and the workers.
#[derive(Debug, Clone)]
pub struct Store {
    db: Arc<Mutex<Connection>>,
    path: std::path::PathBuf,
    committer: commit::Committer,
}

/// A message waiting in a queue, for `dlq list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub id: i64,
    pub body: String,
    pub sent_at_ms: i64,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Store {
    /// Opens (creating if need be) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // Webhook bodies carry names, e-mails and phones: the owner's alone. (SQLite
        // gives its WAL and shared-memory files the database's mode.)
        crate::files::private_file(path).map_err(|source| StoreError::Private {
            path: path.to_owned(),
            source,
        })?;
        let db = Connection::open(path)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        // Sends sync their commits themselves ([`durably`]).
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.busy_timeout(Duration::from_secs(5))?;
        db.execute_batch(crate::schema::STORE)?;
        db.execute_batch(crate::schema::JOURNAL)?;
        // Stores made before messages kept their first receive.
        let columns: Vec<String> = db
            .prepare("SELECT name FROM pragma_table_info('messages')")?
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        if !columns.iter().any(|c| c == "first_received_at") {
            db.execute_batch("ALTER TABLE messages ADD COLUMN first_received_at INTEGER")?;
        }
        let db = Arc::new(Mutex::new(db));
        let committer = commit::Committer::start(Arc::clone(&db)).map_err(StoreError::Committer)?;
        Ok(Store {
            db,
            path: path.to_owned(),
            committer,
        })
    }

    /// From now on, the WAL is checkpointed by a thread of its own, never inside a
    /// commit (see [`checkpoint`]). For the long-running server.
    pub fn checkpoint_behind(&self) -> Result<(), StoreError> {
        checkpoint::behind(&self.path, Arc::downgrade(&self.db))?;
        self.lock().pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(())
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        lock(&self.db)
    }

    /// Queues a message, received not before `delay`; one whose `dedup_id` was
    /// seen on this queue in the last five minutes is dropped, as SQS FIFO does.
    /// Whether it was new.
    pub fn send(
        &self,
        queue: &str,
        body: &str,
        (group_id, dedup_id): (Option<&str>, Option<&str>),
        delay: Duration,
    ) -> Result<bool, StoreError> {
        let message = Outgoing {
            body: body.to_owned(),
            group_id: group_id.map(str::to_owned),
            dedup_id: dedup_id.map(str::to_owned),
            delay: Some(delay),
        };
        Ok(self.send_all(queue, std::slice::from_ref(&message))? == 1)
    }

    /// Queues `messages` as [`Store::send`] does, all or none (one transaction);
    /// how many were new (not dropped as repeats).
    pub fn send_all(&self, queue: &str, messages: &[Outgoing]) -> Result<usize, StoreError> {
        let new = durably(&mut self.lock(), |tx| queue_in(tx, queue, messages, false))?;
        Ok(new.into_iter().filter(|new| *new).count())
    }

    /// [`Store::send_all`] in the next commit shared with every sender waiting
    /// ([`commit`]); whether each message was new. With `once`, a message whose
    /// deduplication id is the key of a job done is a repeat too.
    pub(crate) async fn send_shared(
        &self,
        queue: &'static str,
        messages: Vec<Outgoing>,
        once: bool,
    ) -> Result<Vec<bool>, StoreError> {
        // Nothing to keep is nothing to sync (a job that fired no event sends none).
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        self.committer.send(queue, messages, once).await
    }

    /// Receives up to `max` visible messages, longest visible first (in the
    /// index's order, so a backlog is never sorted), hiding each for `visibility`.
    /// In a FIFO group only the oldest message is ever out, so a contact's changes
    /// keep their order. A message received `max_receives` times already moves to the
    /// dead-letter queue instead, as SQS's redrive policy does, but as a reasoned
    /// letter: what the job is, how often and since when it was tried, and its last
    /// failure when a held job's history says it.
    pub fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility: Duration,
        max_receives: u32,
    ) -> Result<Vec<Record>, StoreError> {
        let mut db = self.lock();
        let tx = db.transaction()?;
        let now = now_ms();
        type Candidate = (i64, String, Option<String>, u32, Option<i64>);
        let candidates: Vec<Candidate> = {
            let mut select = tx.prepare_cached(
                "SELECT id, body, group_id, receives, first_received_at FROM messages m
                 WHERE queue = ?1 AND visible_at <= ?2
                   AND (group_id IS NULL OR NOT EXISTS (
                       SELECT 1 FROM messages p
                       WHERE p.queue = m.queue AND p.group_id = m.group_id AND p.id < m.id))
                 ORDER BY visible_at, id LIMIT ?3",
            )?;
            select
                .query_map(params![queue, now, max as i64], |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                })?
                .collect::<Result<_, _>>()?
        };
        let hidden_until = now + visibility.as_millis() as i64;
        let mut received = Vec::new();
        for (id, body, group_id, receives, first) in candidates {
            if receives >= max_receives {
                let gave_up = GaveUp {
                    receives,
                    first_received: first.and_then(DateTime::from_timestamp_millis),
                    last_received: DateTime::from_timestamp_millis(now),
                };
                let letter = letter(&tx, &body, gave_up)?;
                tx.execute(
                    "UPDATE messages SET queue = ?2, body = ?3, group_id = NULL, visible_at = ?4, receives = 0 WHERE id = ?1",
                    params![id, DEAD, letter, now],
                )?;
                continue;
            }
            tx.execute(
                "UPDATE messages SET receives = receives + 1, visible_at = ?2, in_hand = 1,
                     first_received_at = COALESCE(first_received_at, ?3) WHERE id = ?1",
                params![id, hidden_until, now],
            )?;
            received.push(Record {
                message_id: id.to_string(),
                body,
                group_id,
                receives: receives + 1,
                first_received: DateTime::from_timestamp_millis(first.unwrap_or(now)),
            });
        }
        tx.commit()?;
        Ok(received)
    }

    /// Deletes a handled message.
    pub fn delete(&self, message_id: &str) -> Result<(), StoreError> {
        self.settle(&[message_id], &[])
    }

    /// Makes a received message visible again after `after`.
    pub fn retry_after(&self, message_id: &str, after: Duration) -> Result<(), StoreError> {
        self.settle(&[], &[(message_id, after)])
    }

    /// Deletes the handled messages `done` and makes each of `retries` visible
    /// again after its wait, in one transaction: a batch settled at once.
    pub fn settle(&self, done: &[&str], retries: &[(&str, Duration)]) -> Result<(), StoreError> {
        let mut db = self.lock();
        let tx = db.transaction()?;
        let now = now_ms();
        for id in done {
            tx.prepare_cached("DELETE FROM messages WHERE id = ?1")?
                .execute(params![id])?;
        }
        for (id, after) in retries {
            tx.prepare_cached("UPDATE messages SET visible_at = ?2, in_hand = 0 WHERE id = ?1")?
                .execute(params![id, now + after.as_millis() as i64])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Makes every message received but not settled visible again: at start, what a
    /// previous run had in hand when it stopped is nobody's any more (`serve` holds
    /// a lock, so no other run is live). Messages waiting out a retry delay keep waiting.
    pub fn release_in_hand(&self) -> Result<u64, StoreError> {
        let released = self.lock().execute(
            "UPDATE messages SET visible_at = ?1, in_hand = 0 WHERE in_hand = 1",
            params![now_ms()],
        )?;
        Ok(released as u64)
    }

    /// Every message of `queue`, oldest first, without receiving them.
    pub fn list(&self, queue: &str) -> Result<Vec<Stored>, StoreError> {
        let db = self.lock();
        let mut select = db.prepare_cached(
            "SELECT id, body, sent_at FROM messages WHERE queue = ?1 ORDER BY id",
        )?;
        let rows = select
            .query_map(params![queue], |row| {
                Ok(Stored {
                    id: row.get(0)?,
                    body: row.get(1)?,
                    sent_at_ms: row.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// How many messages `queue` holds, visible or not.
    pub fn depth(&self, queue: &str) -> Result<u64, StoreError> {
        Ok(self.lock().query_row(
            "SELECT COUNT(*) FROM messages WHERE queue = ?1",
            params![queue],
            |row| row.get(0),
        )?)
    }
}

fn lock(db: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding the lock leaves SQLite consistent (its own
    // transactions roll back), so a poisoned lock is still usable.
    db.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `write` in one transaction synced to the disk before this returns.
fn durably<T>(
    db: &mut Connection,
    write: impl FnOnce(&mut Transaction<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    db.pragma_update(None, "synchronous", "FULL")?;
    let written = db.transaction().and_then(|mut tx| {
        let value = write(&mut tx)?;
        tx.commit()?;
        metrics::counter!(SYNCS).increment(1);
        Ok(value)
    });
    if let Err(e) = db.pragma_update(None, "synchronous", "NORMAL") {
        // Safe, only slower: every commit syncs until the next send resets it.
        tracing::warn!(error = %e, "local store: cannot set its commits back to NORMAL");
    }
    written
}

/// Inserts `messages` into `queue`; for each, whether it was new: not a repeat of a
/// deduplication id seen on the queue in the last five minutes, as SQS FIFO has it,
/// nor (with `once`) the key of a job done.
fn queue_in(
    db: &Connection,
    queue: &str,
    messages: &[Outgoing],
    once: bool,
) -> rusqlite::Result<Vec<bool>> {
    let now = now_ms();
    db.prepare_cached("DELETE FROM dedup WHERE expires_at <= ?1")?
        .execute(params![now])?;
    let mut new = Vec::with_capacity(messages.len());
    for message in messages {
        if let Some(dedup) = &message.dedup_id {
            let done = once
                && db
                    .prepare_cached("SELECT 1 FROM processed WHERE key = ?1 AND expires_at > ?2")?
                    .exists(params![dedup, now])?;
            let fresh = !done
                && db
                    .prepare_cached(
                        "INSERT OR IGNORE INTO dedup (queue, dedup_id, expires_at) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![queue, dedup, now + DEDUP_WINDOW_MS])?
                    == 1;
            if !fresh {
                new.push(false);
                continue;
            }
        }
        let delay = message.delay.unwrap_or_default().as_millis() as i64;
        db.prepare_cached(
            "INSERT INTO messages (queue, body, group_id, sent_at, visible_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![queue, message.body, message.group_id, now, now + delay])?;
        new.push(true);
    }
    Ok(new)
}

fn letter(db: &Connection, body: &str, gave_up: GaveUp) -> Result<String, StoreError> {
    let mut letter = read(body, gave_up).letter;
    if let Ok(job) = serde_json::from_str::<EnrichJob>(body) {
        let kept: Option<String> = db
            .query_row(
                "SELECT text FROM records WHERE key = ?1",
                params![format!("held#{}", job.key())],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(history) = kept.and_then(|t| serde_json::from_str::<History>(&t).ok()) {
            if let Some(cause) = &history.last_cause {
                letter.reason = format!("{}; its last failure: {cause}", letter.reason);
            }
            letter.history.last_code = history.last_code;
            letter.history.last_cause = history.last_cause;
        }
    }
    let envelope = LetterMessage::new(letter, body);
    Ok(ghl_capi::ports::text(&envelope))
}
