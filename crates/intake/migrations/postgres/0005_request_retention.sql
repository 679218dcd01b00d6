-- When a request id was first used, so that retention can forget it after the configured
-- window (earlier ones take their complaint's creation time).
ALTER TABLE submit_requests ADD COLUMN record_time_us BIGINT NOT NULL DEFAULT 0;
UPDATE submit_requests SET record_time_us =
    (SELECT create_time_us FROM complaints WHERE complaints.id = submit_requests.complaint_id);
CREATE INDEX submit_requests_by_time ON submit_requests (record_time_us);
