-- The aggregate a dead letter is about: the later events of that aggregate wait behind it
-- (recorded as dead letters too) until it is replayed, so per-aggregate order holds.
ALTER TABLE dead_letters ADD COLUMN aggregate TEXT NOT NULL DEFAULT '';
CREATE INDEX dead_letters_outstanding ON dead_letters (consumer, aggregate, position)
    WHERE replay_time_us IS NULL;
