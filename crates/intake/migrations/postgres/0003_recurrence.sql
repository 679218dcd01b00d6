-- Classification codes of each complaint, to find recurrences: the same subject with the
-- same business type and cause within the recurrence window (D-CASE-5).
ALTER TABLE complaints ADD COLUMN business_type TEXT;
ALTER TABLE complaints ADD COLUMN cause TEXT;
CREATE INDEX complaints_by_subject_issue ON complaints (subject_id, business_type, cause, receive_time_us);
