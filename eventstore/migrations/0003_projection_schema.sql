-- A fingerprint of each Postgres read model's table definitions. When a projection's tables
-- change shape, the runner that holds its lease sees a different fingerprint and rebuilds the
-- read model into a new generation (shadow, then swap) before it goes on. Null: recorded before
-- fingerprints existed, so the shape is unknown and the read model is rebuilt once.
ALTER TABLE projector_checkpoints ADD COLUMN schema_hash text;
