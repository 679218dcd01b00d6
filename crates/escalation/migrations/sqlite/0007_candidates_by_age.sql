-- Retention forgets the bands of complaints received before a cutoff (grouping.window_days +
-- grouping.late_days), oldest first, so the table the matcher searches holds that many days of
-- complaints however many are stored.
CREATE INDEX lsh_buckets_by_age ON lsh_buckets (receive_time_us);
