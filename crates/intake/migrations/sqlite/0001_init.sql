CREATE TABLE complaints (
    id TEXT PRIMARY KEY NOT NULL,
    complaint_number TEXT NOT NULL UNIQUE,
    channel INTEGER NOT NULL,
    receive_time_us INTEGER NOT NULL,
    org_unit TEXT NOT NULL,
    state INTEGER NOT NULL,
    -- The full record (protobuf), personal information included.
    record BLOB NOT NULL,
    create_time_us INTEGER NOT NULL
);
CREATE INDEX complaints_by_receive_time ON complaints (receive_time_us DESC, id DESC);
CREATE INDEX complaints_by_channel ON complaints (channel, receive_time_us DESC, id DESC);

CREATE TABLE submit_requests (
    request_id TEXT PRIMARY KEY NOT NULL,
    request_hash TEXT NOT NULL,
    complaint_id TEXT NOT NULL REFERENCES complaints (id)
);

CREATE TABLE counters (
    name TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
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
