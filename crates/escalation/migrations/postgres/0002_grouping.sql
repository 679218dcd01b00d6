-- Group-complaint detection (D-ESC-2).

-- Accepted complaints waiting to be matched, in intake's feed order. Written in the
-- transaction that applies ComplaintAccepted and removed in the one that matches it, so a
-- complaint is matched exactly once whatever stops the service in between.
CREATE TABLE match_queue (
    complaint TEXT PRIMARY KEY NOT NULL,
    enqueue_seq BIGINT NOT NULL,
    org_unit TEXT NOT NULL
);
CREATE INDEX match_queue_order ON match_queue (enqueue_seq);

-- What each matched complaint is compared by, the cluster it belongs to, and its match.
CREATE TABLE fingerprints (
    complaint TEXT PRIMARY KEY NOT NULL,
    institution TEXT NOT NULL,
    receive_time_us BIGINT NOT NULL,
    cluster TEXT NOT NULL,
    complainant_key TEXT NOT NULL,
    -- Its tokens, space-separated, sorted.
    tokens TEXT NOT NULL,
    business_type TEXT NOT NULL,
    cause TEXT NOT NULL,
    matched_with TEXT NOT NULL DEFAULT '',
    score DOUBLE PRECISION NOT NULL DEFAULT 0,
    shared_terms TEXT NOT NULL DEFAULT ''
);
CREATE INDEX fingerprints_by_cluster ON fingerprints (cluster, receive_time_us);

-- Locality-sensitive hashing: one row per band of each signature. A lookup reads only the
-- complaints that share a band, so matching stays sub-linear in the window.
CREATE TABLE lsh_buckets (
    institution TEXT NOT NULL,
    bucket BIGINT NOT NULL,
    receive_time_us BIGINT NOT NULL,
    complaint TEXT NOT NULL
);
CREATE INDEX lsh_buckets_lookup ON lsh_buckets (institution, bucket, receive_time_us);

-- Clusters of similar complaints and the incident each became.
CREATE TABLE clusters (
    id TEXT PRIMARY KEY NOT NULL,
    institution TEXT NOT NULL,
    incident TEXT
);
CREATE UNIQUE INDEX clusters_by_incident ON clusters (incident) WHERE incident IS NOT NULL;
