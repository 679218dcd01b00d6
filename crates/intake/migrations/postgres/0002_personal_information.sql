-- Data subjects (complainants). Each has a random data key, stored only wrapped by a master
-- key (key_id names which); erasure destroys the wrapped key (NULL) and the index entries.
CREATE TABLE subjects (
    id TEXT PRIMARY KEY NOT NULL,
    key_id TEXT NOT NULL,
    wrapped_key BYTEA,
    create_time_us BIGINT NOT NULL,
    erase_time_us BIGINT
);

-- Blind indexes: keyed HMAC digests of normalised identifiers (ID number, phone) to find a
-- subject without storing the identifier.
CREATE TABLE subject_index (
    kind TEXT NOT NULL,
    digest TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    PRIMARY KEY (kind, digest)
);
CREATE INDEX subject_index_by_subject ON subject_index (subject_id);

-- A complaint's record holds personal fields masked; the clear values are sealed in pii with
-- the subject's data key (AAD bound to the complaint and subject).
ALTER TABLE complaints ADD COLUMN subject_id TEXT;
ALTER TABLE complaints ADD COLUMN pii BYTEA;
CREATE INDEX complaints_by_subject ON complaints (subject_id);

-- Every clear read, export, correction and erasure of personal information: who, when, why.
CREATE TABLE pii_access (
    id BIGSERIAL PRIMARY KEY,
    complaint_id TEXT,
    subject_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    access_time_us BIGINT NOT NULL
);
CREATE INDEX pii_access_by_subject ON pii_access (subject_id, access_time_us);
