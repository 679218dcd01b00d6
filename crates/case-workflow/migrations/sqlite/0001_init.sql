CREATE TABLE cases (
    id TEXT PRIMARY KEY NOT NULL,
    case_number TEXT NOT NULL,
    complaint TEXT NOT NULL UNIQUE,
    state INTEGER NOT NULL,
    open_time_us INTEGER NOT NULL,
    -- Optimistic-concurrency version behind the etag.
    version INTEGER NOT NULL,
    -- The full case (protobuf).
    record BLOB NOT NULL
);
CREATE INDEX cases_by_open_time ON cases (open_time_us DESC, id DESC);
CREATE INDEX cases_by_state ON cases (state, open_time_us DESC, id DESC);

-- Where each consumed feed was applied up to, written with the effects.
CREATE TABLE consumer_positions (
    consumer TEXT PRIMARY KEY NOT NULL,
    position INTEGER NOT NULL
);

CREATE TABLE outbox (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    aggregate TEXT NOT NULL,
    occur_time_us INTEGER NOT NULL,
    payload BLOB NOT NULL,
    traceparent TEXT NOT NULL DEFAULT '',
    tracestate TEXT NOT NULL DEFAULT ''
);
