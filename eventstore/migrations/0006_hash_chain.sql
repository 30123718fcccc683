-- A tamper-evident log (see eventstore/README.md, "Hash chain and checkpoints"). Forward-only.
--
-- Each event carries `hash`: sha256 of the previous event's hash in its stream (nothing for
-- version 1) followed by the event's own fields, each written as "<octet length>:<text>" so no
-- two different events can spell the same bytes. The append computes it in its one INSERT;
-- `chronicle audit verify` recomputes it outside the database.
CREATE FUNCTION chronicle_hash_field(value text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT octet_length(value)::text || ':' || value
$$;

CREATE FUNCTION chronicle_event_hash(
    prev bytea, stream_id text, stream_version bigint, event_id uuid, event_type text,
    schema_version integer, recorded_at timestamptz, data jsonb, metadata jsonb
) RETURNS bytea LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT sha256(prev || convert_to(
        chronicle_hash_field(stream_id) || chronicle_hash_field(stream_version::text)
        || chronicle_hash_field(event_id::text) || chronicle_hash_field(event_type)
        || chronicle_hash_field(schema_version::text)
        -- microseconds since the epoch: the same for every TimeZone setting
        || chronicle_hash_field(((extract(epoch FROM recorded_at) * 1000000)::bigint)::text)
        || chronicle_hash_field(data::text) || chronicle_hash_field(metadata::text), 'UTF8'))
$$;

ALTER TABLE events ADD COLUMN hash bytea;

-- Chain the events already stored, stream by stream in version order. History is otherwise
-- never rewritten: the append-only trigger is off for this one transaction only.
ALTER TABLE events DISABLE TRIGGER events_append_only;

DO $$
DECLARE
    r record;
    current_stream text := NULL;
    prev bytea := '\x'::bytea;
BEGIN
    FOR r IN SELECT global_position, stream_id, stream_version, event_id, event_type, schema_version,
                    recorded_at, data, metadata
             FROM events ORDER BY stream_id, stream_version
    LOOP
        IF current_stream IS DISTINCT FROM r.stream_id THEN
            current_stream := r.stream_id;
            prev := '\x'::bytea;
        END IF;
        prev := chronicle_event_hash(prev, r.stream_id, r.stream_version, r.event_id, r.event_type,
                                     r.schema_version, r.recorded_at, r.data, r.metadata);
        UPDATE events SET hash = prev WHERE global_position = r.global_position;
    END LOOP;
END;
$$;

ALTER TABLE events ENABLE TRIGGER events_append_only;
ALTER TABLE events ALTER COLUMN hash SET NOT NULL;

-- A row inserted by anything but the event store's append (an operator's import, a test's raw
-- row) is chained here, after the rows before it in the same statement. The append supplies its
-- hash, so this never runs for it.
CREATE FUNCTION chronicle_events_chain() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.hash := chronicle_event_hash(
        COALESCE((SELECT hash FROM events WHERE stream_id = NEW.stream_id AND stream_version = NEW.stream_version - 1), '\x'::bytea),
        NEW.stream_id, NEW.stream_version, NEW.event_id, NEW.event_type, NEW.schema_version, NEW.recorded_at,
        NEW.data, NEW.metadata);
    RETURN NEW;
END;
$$;

CREATE TRIGGER events_chain BEFORE INSERT ON events
    FOR EACH ROW WHEN (NEW.hash IS NULL) EXECUTE FUNCTION chronicle_events_chain();

-- Signed checkpoints over the global log, in the subscribers' safe order. Checkpoint n covers
-- every event after checkpoint n - 1's end up to its own (transaction_id, global_position);
-- `digest` is sha256(checkpoint n - 1's digest || each covered event's hash, in order), so a
-- deleted event, or a whole deleted stream, changes a digest the key signed.
CREATE TABLE audit_checkpoints (
    sequence        bigint      PRIMARY KEY CHECK (sequence > 0),
    transaction_id  xid8        NOT NULL,
    global_position bigint      NOT NULL,
    event_count     bigint      NOT NULL CHECK (event_count >= 0),
    digest          bytea       NOT NULL,
    key_id          text        NOT NULL,
    signature       bytea       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Checkpoints are appended, never changed.
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION chronicle_events_append_only();
