-- The length and head hash each case records of its audit trail, sealed with an HMAC-SHA256
-- under an audit key ("<key id>:<hex>"), written with every append. Removing a trail's newest
-- entries and writing back an earlier head is then detected: the seal does not match, and
-- whoever can write the database cannot make one that does. Heads written before carry no
-- seal and do not verify until the operator has them sealed once (audit.rechain_legacy).
ALTER TABLE cases ADD COLUMN audit_seal TEXT NOT NULL DEFAULT '';
