-- Audit: every event of one correlation id (what one request caused, across streams and
-- workers), in global order. Forward-only.
CREATE INDEX events_correlation_idx ON events ((metadata->>'correlation_id'), global_position);
