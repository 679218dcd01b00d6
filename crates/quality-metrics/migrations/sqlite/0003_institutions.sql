-- The institutions the read models hold complaints of (for the exported gauges).
CREATE TABLE metric_institutions (
    unit TEXT PRIMARY KEY
);
INSERT INTO metric_institutions (unit)
    SELECT DISTINCT unit FROM cells WHERE dimension = 0 AND grain = 1 AND unit NOT LIKE '%/%/%';
