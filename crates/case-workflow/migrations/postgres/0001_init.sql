CREATE TABLE cases (
    id TEXT PRIMARY KEY NOT NULL,
    case_number TEXT NOT NULL,
    complaint TEXT NOT NULL UNIQUE,
    state INTEGER NOT NULL,
    open_time_us BIGINT NOT NULL,
    -- Optimistic-concurrency version behind the etag.
    version BIGINT NOT NULL,
    -- The full case (protobuf).
    record BYTEA NOT NULL
);
CREATE INDEX cases_by_open_time ON cases (open_time_us DESC, id DESC);
CREATE INDEX cases_by_state ON cases (state, open_time_us DESC, id DESC);

-- Where each consumed feed was applied up to, written with the effects.
CREATE TABLE consumer_positions (
    consumer TEXT PRIMARY KEY NOT NULL,
    position BIGINT NOT NULL
);

-- Positions are assigned after commit by the feed sequencer (see the platform's events module).
CREATE TABLE outbox (
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
CREATE INDEX outbox_unsequenced ON outbox (id) WHERE position IS NULL;
