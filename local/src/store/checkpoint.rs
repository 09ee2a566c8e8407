//! Checkpoints behind the writers. SQLite's own checkpoint runs inside whichever
//! commit fills the WAL past its mark, so now and then one webhook's commit would
//! also copy a thousand pages into the database and sync it. `serve` checkpoints on
//! a connection and a thread of their own instead, which in WAL mode proceeds beside
//! the writers rather than in front of them.

use std::path::Path;
use std::sync::{Mutex, Weak};
use std::time::Duration;

use rusqlite::Connection;

use super::StoreError;

/// How often: at a few thousand webhooks a second, a WAL of a few megabytes.
const EVERY: Duration = Duration::from_millis(250);

/// Runs a passive checkpoint every [`EVERY`] on its own connection to `path`,
/// until the store's connection (`store`) is gone.
pub(super) fn behind(path: &Path, store: Weak<Mutex<Connection>>) -> Result<(), StoreError> {
    let db = Connection::open(path)?;
    db.busy_timeout(Duration::from_secs(5))?;
    std::thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || {
            while store.strong_count() > 0 {
                std::thread::sleep(EVERY);
                // Passive: it copies what no reader still needs and never waits for one.
                let done = db.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                if let Err(e) = done {
                    // The WAL grows until the next try; nothing is lost.
                    tracing::warn!(error = %e, "local store: cannot checkpoint its WAL");
                }
            }
        })
        .map_err(StoreError::Committer)?;
    Ok(())
}
