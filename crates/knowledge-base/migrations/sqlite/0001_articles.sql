-- Articles and their versions (D-KB-1). A version's content is its encoded
-- redress.knowledge.v1.ArticleVersion; the columns beside it are what queries filter on.
CREATE TABLE articles (
    id TEXT PRIMARY KEY NOT NULL,
    kind INTEGER NOT NULL,
    -- The unit the article applies to (with the units below it); '/' for the whole platform.
    org_unit TEXT NOT NULL,
    state INTEGER NOT NULL,
    published_version INTEGER NOT NULL DEFAULT 0,
    latest_version INTEGER NOT NULL,
    -- State of the open (draft or in review) version; 0 when there is none.
    open_state INTEGER NOT NULL DEFAULT 0,
    create_time_us INTEGER NOT NULL,
    update_time_us INTEGER NOT NULL,
    -- Bumped by every change, so that a write never overwrites a change it did not read.
    revision INTEGER NOT NULL
);
CREATE INDEX articles_by_update ON articles (update_time_us, id);
CREATE INDEX articles_by_org_unit ON articles (org_unit);

CREATE TABLE article_versions (
    article_id TEXT NOT NULL REFERENCES articles (id),
    version INTEGER NOT NULL,
    state INTEGER NOT NULL,
    record BLOB NOT NULL,
    PRIMARY KEY (article_id, version)
);
CREATE INDEX article_versions_published ON article_versions (state, article_id);

-- The first result of each request id (AIP-155), so that a retry returns it.
CREATE TABLE kb_requests (
    request_id TEXT PRIMARY KEY NOT NULL,
    fingerprint TEXT NOT NULL,
    response BLOB NOT NULL,
    record_time_us INTEGER NOT NULL
);
CREATE INDEX kb_requests_by_age ON kb_requests (record_time_us);
