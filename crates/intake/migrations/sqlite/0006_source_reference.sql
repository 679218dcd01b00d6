-- Who a complaint is in the system it came from: the institution its organisation unit
-- belongs to and the caller's external reference (NULL when it has none). One complaint per
-- institution holds a reference, for ever, so that a submission carrying it again (an import
-- run once more after its request ids were forgotten) finds that complaint instead of
-- recording a second one.
ALTER TABLE complaints ADD COLUMN source_reference TEXT;
CREATE UNIQUE INDEX complaints_by_source_reference ON complaints (source_reference)
    WHERE source_reference IS NOT NULL;
-- The reference is read from the record (protobuf), so the store derives it when it opens for
-- every row not yet done: those recorded before this migration, and those an earlier version
-- still running records without it.
ALTER TABLE complaints ADD COLUMN source_reference_derived BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX complaints_without_source_reference ON complaints (create_time_us, id)
    WHERE NOT source_reference_derived;
-- A reference's complaint is answered together with the request that recorded it.
CREATE INDEX submit_requests_by_complaint ON submit_requests (complaint_id);
