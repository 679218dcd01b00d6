-- Restriction of processing (PIPL Art.44): set while the subject restricted the processing of
-- their personal information, which is then used only to handle their complaints.
ALTER TABLE subjects ADD COLUMN restrict_time_us INTEGER;

-- Request ids of data-subject requests that change a subject (restrict, lift), like
-- change_requests for complaints; forgotten by retention.
CREATE TABLE subject_requests (
    request_id TEXT PRIMARY KEY NOT NULL,
    subject_id TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    record_time_us INTEGER NOT NULL
);
CREATE INDEX subject_requests_by_time ON subject_requests (record_time_us);

-- The access log as a keyed hash chain: each entry's hash is an HMAC-SHA256 (under the
-- access-log key named by key_id, configured outside the database) of its content and the
-- previous entry's hash. The key is not here, so the entries recorded before are chained by
-- intake when it opens its store (chain_position NULL until then), in the order recorded.
ALTER TABLE pii_access ADD COLUMN chain_position INTEGER;
ALTER TABLE pii_access ADD COLUMN previous_hash TEXT;
ALTER TABLE pii_access ADD COLUMN hash TEXT;
ALTER TABLE pii_access ADD COLUMN key_id TEXT;
CREATE UNIQUE INDEX pii_access_by_position ON pii_access (chain_position);
CREATE INDEX pii_access_unchained ON pii_access (id) WHERE chain_position IS NULL;

-- The chain's length and head hash, so that removing its newest entries is detected too.
CREATE TABLE pii_access_chain (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    length INTEGER NOT NULL,
    head TEXT NOT NULL
);
INSERT INTO pii_access_chain (id, length, head) VALUES (1, 0, '');
