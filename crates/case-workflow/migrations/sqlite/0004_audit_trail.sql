-- Each case's hash-chained audit trail, and the length and head hash the case records of it
-- (so that a truncated trail is detected too).
CREATE TABLE audit_entries (
    case_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    record_time_us INTEGER NOT NULL,
    -- JSON object, keys sorted.
    details TEXT NOT NULL,
    previous_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (case_id, sequence)
);
ALTER TABLE cases ADD COLUMN audit_length INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cases ADD COLUMN audit_head TEXT NOT NULL DEFAULT '';
