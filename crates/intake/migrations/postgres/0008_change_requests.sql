-- Request ids of changes to recorded complaints (AIP-155; today the read-back confirmation):
-- a retry returns the complaint instead of recording the change twice, and the same id with
-- another request is refused. The hash is keyed, since a request may hold personal
-- information (a complainant's corrections). Forgotten by retention like submit_requests.
CREATE TABLE change_requests (
    request_id TEXT PRIMARY KEY NOT NULL,
    complaint_id TEXT NOT NULL REFERENCES complaints (id),
    request_hash TEXT NOT NULL,
    record_time_us BIGINT NOT NULL
);
CREATE INDEX change_requests_by_time ON change_requests (record_time_us);
