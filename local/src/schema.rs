//! The store's tables, in one place: the queues, their deduplication, the state
//! (tags, jobs done, records, counters) and the audit journal.

/// The queues and the state.
pub(crate) const STORE: &str = "
    CREATE TABLE IF NOT EXISTS messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        queue TEXT NOT NULL,
        body TEXT NOT NULL,
        group_id TEXT,
        sent_at INTEGER NOT NULL,
        visible_at INTEGER NOT NULL,
        receives INTEGER NOT NULL DEFAULT 0,
        in_hand INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, visible_at, id);
    CREATE INDEX IF NOT EXISTS messages_group ON messages (queue, group_id, id);
    CREATE TABLE IF NOT EXISTS dedup (
        queue TEXT NOT NULL,
        dedup_id TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (queue, dedup_id)
    );
    -- Expired rows are deleted as rows are added: by index, not by scanning.
    CREATE INDEX IF NOT EXISTS dedup_expiry ON dedup (expires_at);
    CREATE TABLE IF NOT EXISTS tags (
        location_id TEXT NOT NULL,
        contact_id TEXT NOT NULL,
        tags TEXT NOT NULL,
        PRIMARY KEY (location_id, contact_id)
    );
    CREATE TABLE IF NOT EXISTS processed (
        key TEXT PRIMARY KEY,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS processed_expiry ON processed (expires_at);
    CREATE TABLE IF NOT EXISTS records (
        key TEXT PRIMARY KEY,
        text TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS records_expiry ON records (expires_at);
    CREATE TABLE IF NOT EXISTS counts (
        key TEXT NOT NULL,
        name TEXT NOT NULL,
        n INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (key, name)
    );
    CREATE INDEX IF NOT EXISTS counts_expiry ON counts (expires_at);
    CREATE TABLE IF NOT EXISTS count_members (
        key TEXT NOT NULL,
        name TEXT NOT NULL,
        member TEXT NOT NULL,
        PRIMARY KEY (key, name, member)
    );
";

/// The journal's table. The fields the status page counts by are also kept as
/// columns of their own, computed once as each entry is written, so a page reads
/// a day of entries without parsing their JSON. Ids are indexed where present
/// only (most entries name one or two).
pub(crate) const JOURNAL: &str = "
    CREATE TABLE IF NOT EXISTS journal (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        level TEXT NOT NULL,
        message TEXT NOT NULL,
        webhook_id TEXT,
        event_id TEXT,
        contact_id TEXT,
        location_id TEXT,
        fields TEXT NOT NULL,
        path TEXT GENERATED ALWAYS AS (fields ->> '$.path') STORED,
        status INTEGER GENERATED ALWAYS AS (fields ->> '$.status') STORED,
        outcome TEXT GENERATED ALWAYS AS (fields ->> '$.outcome') STORED,
        event_name TEXT GENERATED ALWAYS AS (fields ->> '$.event_name') STORED,
        pixel TEXT GENERATED ALWAYS AS (fields ->> '$.pixel') STORED,
        code TEXT GENERATED ALWAYS AS (fields ->> '$.code') STORED,
        operation TEXT GENERATED ALWAYS AS (fields ->> '$.operation') STORED,
        rows INTEGER GENERATED ALWAYS AS (fields ->> '$.rows') STORED,
        changes INTEGER GENERATED ALWAYS AS (fields ->> '$.changes') STORED,
        lag_seconds INTEGER GENERATED ALWAYS AS (fields ->> '$.lag_seconds') STORED,
        latency_ms INTEGER GENERATED ALWAYS AS (fields ->> '$.latency_ms') STORED
    );
    CREATE INDEX IF NOT EXISTS journal_message ON journal (message, at);
    CREATE INDEX IF NOT EXISTS journal_webhook ON journal (webhook_id) WHERE webhook_id IS NOT NULL;
    CREATE INDEX IF NOT EXISTS journal_event ON journal (event_id) WHERE event_id IS NOT NULL;
    CREATE INDEX IF NOT EXISTS journal_contact ON journal (contact_id) WHERE contact_id IS NOT NULL;
";
