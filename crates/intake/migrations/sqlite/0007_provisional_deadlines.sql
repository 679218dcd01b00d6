-- Whether the receipt has a deadline counted on a year with no official holiday arrangement
-- loaded (D-SLA-6), so that loading that year's calendar finds the complaints to recompute
-- without reading every complaint. Written with every write of the complaint's record.
ALTER TABLE complaints ADD COLUMN deadlines_provisional BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX complaints_with_provisional_deadlines ON complaints (id) WHERE deadlines_provisional;
