-- Public opinion (D-ESC-3), the VIP register (D-ESC-4) and malicious-complaint flags (D-ESC-5).

CREATE TABLE watchlists (
    id TEXT PRIMARY KEY NOT NULL,
    org_unit TEXT NOT NULL,
    version BIGINT NOT NULL,
    record BYTEA NOT NULL
);

CREATE TABLE mentions (
    id TEXT PRIMARY KEY NOT NULL,
    org_unit TEXT NOT NULL,
    publish_time_us BIGINT NOT NULL,
    incident TEXT,
    record BYTEA NOT NULL
);
CREATE INDEX mentions_by_incident ON mentions (incident) WHERE incident IS NOT NULL;

-- Which watchlists each mention matched, for volume counts within a window.
CREATE TABLE mention_matches (
    watchlist TEXT NOT NULL,
    mention TEXT NOT NULL,
    publish_time_us BIGINT NOT NULL,
    PRIMARY KEY (watchlist, mention)
);
CREATE INDEX mention_matches_by_time ON mention_matches (watchlist, publish_time_us);

-- The watchlist whose mentions opened a media incident.
ALTER TABLE incidents ADD COLUMN watchlist TEXT;
CREATE INDEX incidents_by_watchlist ON incidents (watchlist, state) WHERE watchlist IS NOT NULL;

CREATE TABLE response_templates (
    id TEXT PRIMARY KEY NOT NULL,
    org_unit TEXT NOT NULL,
    stage BIGINT NOT NULL,
    record BYTEA NOT NULL
);

-- The VIP register: no identifier in clear, only the blind indexes intake keeps too.
CREATE TABLE vips (
    id TEXT PRIMARY KEY NOT NULL,
    institution TEXT NOT NULL,
    crm_reference TEXT NOT NULL,
    record BYTEA NOT NULL,
    UNIQUE (institution, crm_reference)
);
CREATE TABLE vip_index (
    institution TEXT NOT NULL,
    digest TEXT NOT NULL,
    vip TEXT NOT NULL,
    PRIMARY KEY (institution, digest)
);
CREATE INDEX vip_index_by_vip ON vip_index (vip);
-- Complaints found to be a VIP's, routed once.
CREATE TABLE vip_matches (
    complaint TEXT PRIMARY KEY NOT NULL,
    vip TEXT NOT NULL,
    match_time_us BIGINT NOT NULL
);

CREATE TABLE malicious_flags (
    id TEXT PRIMARY KEY NOT NULL,
    complaint TEXT NOT NULL,
    org_unit TEXT NOT NULL,
    state BIGINT NOT NULL,
    version BIGINT NOT NULL,
    record BYTEA NOT NULL
);
CREATE INDEX malicious_flags_by_complaint ON malicious_flags (complaint);
