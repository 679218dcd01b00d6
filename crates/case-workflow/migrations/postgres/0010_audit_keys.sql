-- Audit trails are chained under a key kept outside the database (HMAC-SHA256); each entry
-- names its key. Entries written before carry none: the first start with a key chains them
-- again under it, once, and records that here, in the same transaction; afterwards an entry
-- without a key is never chained again and does not verify.
ALTER TABLE audit_entries ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
CREATE TABLE audit_keying (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    key_id TEXT NOT NULL,
    keyed_time_us BIGINT NOT NULL,
    rechained_cases BIGINT NOT NULL
);
