-- A digest names one index entry: its kind is part of the key it is made with, so no two
-- kinds share one, and (kind, digest) is already unique. Declared unique, it tells the planner
-- that a look-up of a batch's digests returns at most one row each even before the table was
-- first analysed (a new store, or one filled faster than autovacuum analyses it); without
-- statistics it took each digest for 0.5 % of the table, and joined the whole of `subjects`
-- by hashing it.
CREATE UNIQUE INDEX subject_index_by_digest_unique ON subject_index (digest);
DROP INDEX subject_index_by_digest;
-- Which of some subjects an identity document knows: one descent per subject, rather than
-- every identity document's entry combined with the subjects' (the planner's choice without
-- statistics).
CREATE INDEX subject_index_by_subject_kind ON subject_index (subject_id, kind);
DROP INDEX subject_index_by_subject;
