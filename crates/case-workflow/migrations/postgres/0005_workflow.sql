-- When the deadline sweeper must look at a case next (NULL: no reminder left to raise).
ALTER TABLE cases ADD COLUMN next_check_us BIGINT;
CREATE INDEX cases_by_next_check ON cases (next_check_us) WHERE next_check_us IS NOT NULL;

-- Results of changes by request id (AIP-155): a retry returns the first result.
CREATE TABLE case_requests (
    request_id TEXT PRIMARY KEY NOT NULL,
    case_id TEXT NOT NULL,
    -- Hash of the caller and the request, so a reused id with another request is refused.
    fingerprint TEXT NOT NULL,
    -- The case as the first call returned it (protobuf).
    response BYTEA NOT NULL,
    record_time_us BIGINT NOT NULL
);
