-- Retention forgets request ids by age: without this index every hourly pass scanned them all.
CREATE INDEX case_requests_by_time ON case_requests (record_time_us);
