-- Whether the complainant restricted the processing of their personal information (PIPL
-- Art.44), as intake's ComplaintProcessingRestricted last said: 1 restricted, 0 lifted, NULL
-- while intake said nothing since its ComplaintAccepted (whose flag then holds).
ALTER TABLE complaints ADD COLUMN restricted INTEGER;
