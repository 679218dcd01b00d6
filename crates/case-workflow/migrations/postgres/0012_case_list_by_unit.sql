-- Lists scoped to an organisation unit read the unit and those below it as one range of
-- org_unit in byte order (the "C" collation), newest first within a unit.
CREATE INDEX cases_by_org_unit_time ON cases (org_unit COLLATE "C", open_time_us DESC, id DESC);
DROP INDEX cases_by_org_unit;
