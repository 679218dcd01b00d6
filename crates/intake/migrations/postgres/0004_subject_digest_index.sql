-- Subjects are looked up by many digests at once (a batch of submissions).
CREATE INDEX subject_index_by_digest ON subject_index (digest);
