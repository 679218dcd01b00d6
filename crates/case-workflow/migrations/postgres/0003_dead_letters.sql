-- Events a consumer could not apply (they no longer decode, say) and passed over, kept with
-- their payload for investigation and replay instead of stalling everything behind them.
CREATE TABLE dead_letters (
    consumer TEXT NOT NULL,
    position BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    error TEXT NOT NULL,
    payload BYTEA NOT NULL,
    record_time_us BIGINT NOT NULL,
    PRIMARY KEY (consumer, position)
);
