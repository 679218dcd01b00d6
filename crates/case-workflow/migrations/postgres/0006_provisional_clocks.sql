-- Whether a running clock of the case counts a year with no official holiday arrangement
-- loaded (D-SLA-6), so that loading that year's calendar finds the cases to recompute without
-- reading every case. Written with every change of the case.
ALTER TABLE cases ADD COLUMN provisional BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX cases_with_provisional_clocks ON cases (id) WHERE provisional;
-- Cases recorded before this column existed may have clocks left without a due time for want
-- of a calendar year: the first revision after start-up looks at every open one once.
UPDATE cases SET provisional = TRUE WHERE state NOT IN (7, 8);
