-- What the escalation service knows of each complaint, from intake's ComplaintAccepted and
-- case-workflow's case events (either may arrive first). No personal information.
CREATE TABLE complaints (
    complaint TEXT PRIMARY KEY NOT NULL,
    org_unit TEXT NOT NULL DEFAULT '',
    -- Whether intake's ComplaintAccepted was applied (its payload is `accepted`).
    accepted BIGINT NOT NULL DEFAULT 0,
    accepted_record BYTEA,
    case_name TEXT,
    grade BIGINT NOT NULL DEFAULT 0,
    assignee TEXT NOT NULL DEFAULT '',
    department TEXT NOT NULL DEFAULT '',
    -- The first complaint of the chain of repeats intake links by blind index: one
    -- complainant counts once without any personal information here.
    complainant_key TEXT NOT NULL DEFAULT '',
    -- 1 while the case is open (or not yet known), 0 once closed or withdrawn.
    case_open BIGINT NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX complaints_by_case ON complaints (case_name) WHERE case_name IS NOT NULL;

CREATE TABLE incidents (
    id TEXT PRIMARY KEY NOT NULL,
    org_unit TEXT NOT NULL,
    kind BIGINT NOT NULL,
    state BIGINT NOT NULL,
    create_time_us BIGINT NOT NULL,
    version BIGINT NOT NULL,
    -- When the sweeper looks at it next (a crisis stage's due time).
    next_check_us BIGINT,
    record BYTEA NOT NULL
);
CREATE INDEX incidents_by_time ON incidents (create_time_us DESC, id DESC);
CREATE INDEX incidents_due ON incidents (next_check_us) WHERE next_check_us IS NOT NULL;

CREATE TABLE incident_members (
    incident TEXT NOT NULL,
    complaint TEXT NOT NULL,
    -- Join order within the incident.
    seq BIGINT NOT NULL,
    -- The member's complainant key (see complaints).
    complainant TEXT NOT NULL DEFAULT '',
    record BYTEA NOT NULL,
    PRIMARY KEY (incident, complaint)
);
CREATE INDEX incident_members_by_complaint ON incident_members (complaint);

CREATE TABLE statements (
    incident TEXT NOT NULL,
    version BIGINT NOT NULL,
    state BIGINT NOT NULL,
    record BYTEA NOT NULL,
    PRIMARY KEY (incident, version)
);

-- Every use of a statement on a channel: what was said where.
CREATE TABLE statement_uses (
    id TEXT PRIMARY KEY NOT NULL,
    incident TEXT NOT NULL,
    version BIGINT NOT NULL,
    use_time_us BIGINT NOT NULL,
    record BYTEA NOT NULL
);
CREATE INDEX statement_uses_by_statement ON statement_uses (incident, version);

CREATE TABLE escalations (
    id TEXT PRIMARY KEY NOT NULL,
    complaint TEXT NOT NULL UNIQUE,
    org_unit TEXT NOT NULL,
    state BIGINT NOT NULL,
    level BIGINT NOT NULL,
    update_time_us BIGINT NOT NULL,
    version BIGINT NOT NULL,
    next_check_us BIGINT,
    record BYTEA NOT NULL
);
CREATE INDEX escalations_by_time ON escalations (update_time_us DESC, id DESC);
CREATE INDEX escalations_due ON escalations (next_check_us) WHERE next_check_us IS NOT NULL;

CREATE TABLE alerts (
    id TEXT PRIMARY KEY NOT NULL,
    org_unit TEXT NOT NULL,
    kind BIGINT NOT NULL,
    acknowledged BIGINT NOT NULL DEFAULT 0,
    create_time_us BIGINT NOT NULL,
    -- What raised it, so that one cause raises one alert however often it is seen.
    cause TEXT NOT NULL UNIQUE,
    record BYTEA NOT NULL
);
CREATE INDEX alerts_by_time ON alerts (create_time_us DESC, id DESC);

-- Requests to CaseService, recorded with the decision that made them and carried out after
-- (see domain::actions): `key` names each once and is its request id.
CREATE TABLE case_actions (
    key TEXT PRIMARY KEY NOT NULL,
    complaint TEXT NOT NULL,
    org_unit TEXT NOT NULL,
    kind TEXT NOT NULL,
    request TEXT NOT NULL,
    -- 0 pending, 1 done, 2 refused for good (last_error says why).
    state BIGINT NOT NULL DEFAULT 0,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_us BIGINT NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    create_time_us BIGINT NOT NULL,
    done_time_us BIGINT
);
CREATE INDEX case_actions_pending ON case_actions (next_attempt_us) WHERE state = 0;
CREATE INDEX case_actions_by_complaint ON case_actions (complaint);

-- Request ids (AIP-155) with the first response.
CREATE TABLE requests (
    request_id TEXT PRIMARY KEY NOT NULL,
    fingerprint TEXT NOT NULL,
    response BYTEA NOT NULL,
    record_time_us BIGINT NOT NULL
);
CREATE INDEX requests_by_age ON requests (record_time_us);
