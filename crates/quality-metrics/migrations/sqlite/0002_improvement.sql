-- Root-cause analyses and improvement actions: the service's own records (kept by a rebuild).
CREATE TABLE root_causes (
    id TEXT PRIMARY KEY,
    org_unit TEXT NOT NULL,
    create_time_us BIGINT NOT NULL,
    record BLOB NOT NULL
);
CREATE INDEX root_causes_by_time ON root_causes (create_time_us, id);

CREATE TABLE improvement_actions (
    id TEXT PRIMARY KEY,
    org_unit TEXT NOT NULL,
    status INTEGER NOT NULL,
    due_day INTEGER NOT NULL,
    -- When its next reminder may be due (NULL: none).
    next_check_us BIGINT,
    version BIGINT NOT NULL,
    record BLOB NOT NULL
);
CREATE INDEX improvement_actions_next_check ON improvement_actions (next_check_us);
CREATE INDEX improvement_actions_by_due ON improvement_actions (due_day, id);
