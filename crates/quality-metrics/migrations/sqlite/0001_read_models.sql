-- The read models: one fact per complaint, and rollup cells by unit × dimension value × day or
-- month (derived; dropped and rebuilt from the feeds). Targets, denominators and request ids
-- are the service's own records and survive a rebuild.
CREATE TABLE facts (
    complaint TEXT PRIMARY KEY,
    org_unit TEXT NOT NULL,
    record BLOB NOT NULL
);

CREATE TABLE cells (
    unit TEXT NOT NULL,
    dimension INTEGER NOT NULL,
    grain INTEGER NOT NULL,
    day INTEGER NOT NULL,
    value TEXT NOT NULL,
    measures BLOB NOT NULL,
    PRIMARY KEY (unit, dimension, grain, day, value)
) WITHOUT ROWID;

-- One value's cells over a period (a KPI filtered by a dimension value).
CREATE INDEX cells_by_value ON cells (unit, dimension, value, grain, day);

CREATE TABLE read_model_state (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    epoch BIGINT NOT NULL,
    rebuilds BIGINT NOT NULL
);
INSERT INTO read_model_state (singleton, epoch, rebuilds) VALUES (1, 0, 0);

CREATE TABLE targets (
    institution TEXT NOT NULL,
    kpi INTEGER NOT NULL,
    comparator INTEGER NOT NULL,
    threshold DOUBLE PRECISION NOT NULL,
    update_time_us BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (institution, kpi)
);

CREATE TABLE denominators (
    org_unit TEXT NOT NULL,
    month INTEGER NOT NULL,
    customers BIGINT NOT NULL,
    branches BIGINT NOT NULL,
    premium_minor BIGINT NOT NULL,
    update_time_us BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (org_unit, month)
);

CREATE TABLE metrics_requests (
    request_id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    response BLOB NOT NULL,
    record_time_us BIGINT NOT NULL
);
CREATE INDEX metrics_requests_by_age ON metrics_requests (record_time_us);
