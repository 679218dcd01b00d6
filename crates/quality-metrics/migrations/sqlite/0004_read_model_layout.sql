-- What the read models count a fact under (`store::ops::LAYOUT`): read models built in an
-- older layout are dropped and replayed from the feeds when the store opens (0: built before
-- facts were counted by product).
ALTER TABLE read_model_state ADD COLUMN layout BIGINT NOT NULL DEFAULT 0;
