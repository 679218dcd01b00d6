-- Events a consumer could not apply (they no longer decode, say) and passed over, kept with
-- their payload for investigation and replay instead of stalling everything behind them.
CREATE TABLE dead_letters (
    consumer TEXT NOT NULL,
    position INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    error TEXT NOT NULL,
    payload BLOB NOT NULL,
    record_time_us INTEGER NOT NULL,
    PRIMARY KEY (consumer, position)
);
