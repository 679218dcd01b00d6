-- The event plumbing every service shares (see the platform's events module). Services that
-- predate it created the same tables in their own first migrations, hence IF NOT EXISTS.

-- The transactional outbox: positions are commit order (SQLite has one writer at a time).
CREATE TABLE IF NOT EXISTS outbox (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    aggregate TEXT NOT NULL,
    occur_time_us INTEGER NOT NULL,
    payload BLOB NOT NULL,
    traceparent TEXT NOT NULL DEFAULT '',
    tracestate TEXT NOT NULL DEFAULT ''
);

-- Where each consumed feed was applied up to, written with the effects.
CREATE TABLE IF NOT EXISTS consumer_positions (
    consumer TEXT PRIMARY KEY NOT NULL,
    position INTEGER NOT NULL
);

-- Events a consumer could not apply, kept with their payload for investigation and replay
-- instead of stalling everything behind them.
CREATE TABLE IF NOT EXISTS dead_letters (
    consumer TEXT NOT NULL,
    position INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    error TEXT NOT NULL,
    payload BLOB NOT NULL,
    record_time_us INTEGER NOT NULL,
    PRIMARY KEY (consumer, position)
);
