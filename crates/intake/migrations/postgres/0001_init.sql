CREATE TABLE complaints (
    id TEXT PRIMARY KEY NOT NULL,
    complaint_number TEXT NOT NULL UNIQUE,
    channel INTEGER NOT NULL,
    receive_time_us BIGINT NOT NULL,
    org_unit TEXT NOT NULL,
    state INTEGER NOT NULL,
    -- The full record (protobuf), personal information included.
    record BYTEA NOT NULL,
    create_time_us BIGINT NOT NULL
);
CREATE INDEX complaints_by_receive_time ON complaints (receive_time_us DESC, id DESC);
CREATE INDEX complaints_by_channel ON complaints (channel, receive_time_us DESC, id DESC);

CREATE TABLE submit_requests (
    request_id TEXT PRIMARY KEY NOT NULL,
    request_hash TEXT NOT NULL,
    -- Claimed before the complaint row is written, so the check waits for commit.
    complaint_id TEXT NOT NULL REFERENCES complaints (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE SEQUENCE complaint_number_seq;

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
