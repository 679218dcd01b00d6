-- The owning organisation unit, so reads and lists can be scoped to the caller's unit.
ALTER TABLE cases ADD COLUMN org_unit TEXT NOT NULL DEFAULT '';
CREATE INDEX cases_by_org_unit ON cases (org_unit);
