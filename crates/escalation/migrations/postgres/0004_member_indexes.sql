-- An incident's lead (its first member) and whether a complainant is a member already are
-- looked up at every join: indexed, so a join costs the same however large the incident is.
CREATE INDEX incident_members_by_seq ON incident_members (incident, seq);
CREATE INDEX incident_members_by_complainant ON incident_members (incident, complainant);
