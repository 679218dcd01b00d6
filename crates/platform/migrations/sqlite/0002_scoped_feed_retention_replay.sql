-- The organisation unit an event belongs to, so a feed shows a caller only its own units'
-- events. Events written before it carry '' and are read only by callers of the whole platform.
ALTER TABLE outbox ADD COLUMN org_unit TEXT NOT NULL DEFAULT '';
-- Retention prunes the oldest events by time.
CREATE INDEX outbox_by_occur_time ON outbox (occur_time_us);

-- The highest position retention has pruned: a reader asking to resume below it has missed
-- events and is told so.
CREATE TABLE feed_retention (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    pruned_through INTEGER NOT NULL
);

-- A dead letter applied again by an operator: when, by whom, with which payload.
ALTER TABLE dead_letters ADD COLUMN replay_time_us INTEGER;
ALTER TABLE dead_letters ADD COLUMN replayed_by TEXT NOT NULL DEFAULT '';
ALTER TABLE dead_letters ADD COLUMN org_unit TEXT NOT NULL DEFAULT '';
ALTER TABLE dead_letters ADD COLUMN replay_payload BLOB;
