-- The event store: one append-only table for every stream, and snapshots beside it.
-- Forward-only: never edit this file once applied; add 0002_*.sql instead.

CREATE TABLE events (
    global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id       text        NOT NULL,
    stream_version  bigint      NOT NULL CHECK (stream_version > 0),
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    schema_version  integer     NOT NULL CHECK (schema_version > 0),
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    -- The appending transaction. Readers order by (transaction_id, global_position) and only read
    -- transactions older than the oldest one still open, so a late commit is never skipped.
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version)
);

-- The subscribers' read order.
CREATE INDEX events_safe_order_idx ON events (transaction_id, global_position);

-- Wake subscribers once per appending statement; delivered only when the transaction commits.
CREATE FUNCTION chronicle_notify_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('chronicle_events', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION chronicle_notify_events();

-- History is never rewritten.
CREATE FUNCTION chronicle_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only';
END;
$$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION chronicle_events_append_only();

CREATE TABLE snapshots (
    stream_id      text        NOT NULL,
    stream_version bigint      NOT NULL,
    state_version  integer     NOT NULL,
    data           jsonb       NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream_id, stream_version)
);
