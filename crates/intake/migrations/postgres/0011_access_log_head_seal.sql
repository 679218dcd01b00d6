-- The access log's length and head hash, sealed with an HMAC-SHA256 under an access-log key
-- ("<key id>:<hex>"), written with every append. Removing the newest entries and writing back
-- an earlier head is then detected: the seal does not match, and whoever can write the
-- database cannot make one that does. A head written before carries no seal and does not
-- verify until the operator has it sealed once (pii.chain_legacy_access_log).
ALTER TABLE pii_access_chain ADD COLUMN seal TEXT NOT NULL DEFAULT '';
