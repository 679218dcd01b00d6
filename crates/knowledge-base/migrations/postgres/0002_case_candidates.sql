-- The case library: typical-case candidates proposed from case-workflow's CaseClosed events,
-- one per case (a redelivered event proposes nothing new). The candidate itself is its encoded
-- redress.knowledge.v1.CaseCandidate, personal information already removed.
CREATE TABLE case_candidates (
    id TEXT PRIMARY KEY NOT NULL,
    case_name TEXT NOT NULL UNIQUE,
    org_unit TEXT NOT NULL,
    state BIGINT NOT NULL,
    create_time_us BIGINT NOT NULL,
    update_time_us BIGINT NOT NULL,
    record BYTEA NOT NULL
);
CREATE INDEX case_candidates_by_age ON case_candidates (create_time_us, id);
