-- Phones are indexed in their canonical form (E.164; a number without a country code is read
-- as mainland China's), so "+86 138…", "86138…" and "138…" name one subject; identity
-- documents keep their normalisation. index_form says which form a subject's blind indexes
-- are in: 1, phones as written without spaces or dashes, for every subject recorded before
-- (and any an earlier version still running records); 2, canonical, as intake now writes
-- them. When intake opens its store it re-indexes every live subject of form 1 from the phones
-- sealed in its complaints, merging subjects that prove to be one person.
ALTER TABLE subjects ADD COLUMN index_form INTEGER NOT NULL DEFAULT 1;
-- A subject merged into another: its complaints were re-sealed under the survivor's key, its
-- own key destroyed and its index entries deleted; the row remains, naming the survivor, so
-- its access log stays the survivor's.
ALTER TABLE subjects ADD COLUMN merged_into TEXT;
CREATE INDEX subjects_by_index_form ON subjects (index_form, id);
CREATE INDEX subjects_by_merged_into ON subjects (merged_into);
