-- The hash chain (0006), computed by the row trigger for every append. Forward-only.
--
-- 0006 computed the append's hashes in a recursive CTE of the INSERT itself. Measured with
-- pgbench (8 clients, one event each): that statement is planned on every append and cost half
-- the throughput; the trigger's plans are cached per session, and it costs about a tenth. The
-- append now inserts a NULL hash and this trigger, which sees the rows inserted before it by the
-- same statement, chains each row in order. A stream's first event needs no lookup.
CREATE OR REPLACE FUNCTION chronicle_events_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    prev bytea := '\x'::bytea;
BEGIN
    IF NEW.stream_version > 1 THEN
        SELECT hash INTO prev FROM events WHERE stream_id = NEW.stream_id AND stream_version = NEW.stream_version - 1;
        prev := COALESCE(prev, '\x'::bytea);
    END IF;
    NEW.hash := sha256(prev || convert_to(
        chronicle_hash_field(NEW.stream_id) || chronicle_hash_field(NEW.stream_version::text)
        || chronicle_hash_field(NEW.event_id::text) || chronicle_hash_field(NEW.event_type)
        || chronicle_hash_field(NEW.schema_version::text)
        || chronicle_hash_field(((extract(epoch FROM NEW.recorded_at) * 1000000)::bigint)::text)
        || chronicle_hash_field(NEW.data::text) || chronicle_hash_field(NEW.metadata::text), 'UTF8'));
    RETURN NEW;
END;
$$;
