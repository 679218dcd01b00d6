-- Lists scoped to an organisation unit read the unit and those below it as one range of
-- org_unit (byte order), newest received first within a unit.
CREATE INDEX complaints_by_org_unit_time ON complaints (org_unit, receive_time_us DESC, id DESC);
