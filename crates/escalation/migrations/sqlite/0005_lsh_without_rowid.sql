-- The LSH bands are only ever read through their key, so they are kept once, as a table
-- clustered on that key, instead of a table and an index holding every row twice: 32 rows per
-- complaint make this the store's largest table, and its size is what matching pays for once
-- it no longer fits in the page cache.
CREATE TABLE lsh_buckets_keyed (
    institution TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    receive_time_us INTEGER NOT NULL,
    complaint TEXT NOT NULL,
    PRIMARY KEY (institution, bucket, receive_time_us, complaint)
) WITHOUT ROWID;
INSERT OR IGNORE INTO lsh_buckets_keyed (institution, bucket, receive_time_us, complaint)
    SELECT institution, bucket, receive_time_us, complaint FROM lsh_buckets;
DROP TABLE lsh_buckets;
ALTER TABLE lsh_buckets_keyed RENAME TO lsh_buckets;
