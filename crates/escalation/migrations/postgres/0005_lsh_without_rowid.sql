-- The LSH bands are only ever read through their key: the key is the table's primary key
-- (as on SQLite, where the table is clustered on it), and a band is stored once per complaint.
CREATE TABLE lsh_buckets_keyed (
    institution TEXT NOT NULL,
    bucket BIGINT NOT NULL,
    receive_time_us BIGINT NOT NULL,
    complaint TEXT NOT NULL,
    PRIMARY KEY (institution, bucket, receive_time_us, complaint)
);
INSERT INTO lsh_buckets_keyed (institution, bucket, receive_time_us, complaint)
    SELECT institution, bucket, receive_time_us, complaint FROM lsh_buckets
    ON CONFLICT DO NOTHING;
DROP TABLE lsh_buckets;
ALTER TABLE lsh_buckets_keyed RENAME TO lsh_buckets;
