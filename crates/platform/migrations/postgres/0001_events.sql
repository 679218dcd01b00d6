-- The event plumbing every service shares (see the platform's events module). Services that
-- predate it created the same tables in their own first migrations, hence IF NOT EXISTS.

-- The transactional outbox. Positions are assigned after commit by the feed sequencer, since
-- sequence values are not commit order.
CREATE TABLE IF NOT EXISTS outbox (
    id BIGSERIAL PRIMARY KEY,
    position BIGINT UNIQUE,
    event_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    aggregate TEXT NOT NULL,
    occur_time_us BIGINT NOT NULL,
    payload BYTEA NOT NULL,
    traceparent TEXT NOT NULL DEFAULT '',
    tracestate TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS outbox_unsequenced ON outbox (id) WHERE position IS NULL;

-- Where each consumed feed was applied up to, written with the effects.
CREATE TABLE IF NOT EXISTS consumer_positions (
    consumer TEXT PRIMARY KEY NOT NULL,
    position BIGINT NOT NULL
);

-- Events a consumer could not apply, kept with their payload for investigation and replay
-- instead of stalling everything behind them.
CREATE TABLE IF NOT EXISTS dead_letters (
    consumer TEXT NOT NULL,
    position BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    error TEXT NOT NULL,
    payload BYTEA NOT NULL,
    record_time_us BIGINT NOT NULL,
    PRIMARY KEY (consumer, position)
);
