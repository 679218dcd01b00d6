-- free_text_form says how a complaint's free text (demand, facts, staff notes, evidence
-- descriptions, read-back notes, withdrawal and override reasons) was checked for the
-- identifiers written into it: 0 for every complaint recorded before (and any an earlier
-- version still running records), whose record may hold them in clear; 1 once they were
-- found, masked in the record and, while the subject's key lives, sealed in clear with it, as
-- intake now does at submission. When intake opens its store it does this for every complaint
-- below 1, in batches, each complaint marked in the transaction that rewrites it.
ALTER TABLE complaints ADD COLUMN free_text_form INTEGER NOT NULL DEFAULT 0;
CREATE INDEX complaints_by_free_text_form ON complaints (free_text_form, id);
