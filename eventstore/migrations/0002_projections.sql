-- The read side: projector checkpoints with leases' fencing epochs, parked (poison) events, and
-- the workers' inbox. Forward-only.

CREATE TABLE projector_checkpoints (
    projector      text        PRIMARY KEY,
    -- The safe-order pair of the last event applied (see eventstore/README.md).
    transaction_id xid8        NOT NULL DEFAULT '0',
    position       bigint      NOT NULL DEFAULT 0,
    -- Bumped by every process that takes the projector's lease; a checkpoint write carrying an
    -- older epoch is refused, so a process that lost its lease cannot write.
    epoch          bigint      NOT NULL DEFAULT 0,
    -- The read model generation queries read (a rebuild builds the next one and swaps).
    generation     integer     NOT NULL DEFAULT 1,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Events a projector could not apply. `held_behind` is null for the failing event itself, and
-- names that event for later events of the same stream, which wait so the stream stays in order.
CREATE TABLE parked_events (
    projector       text        NOT NULL,
    event_id        uuid        NOT NULL,
    stream_id       text        NOT NULL,
    stream_version  bigint      NOT NULL,
    global_position bigint      NOT NULL,
    transaction_id  xid8        NOT NULL,
    error           text        NOT NULL,
    attempts        integer     NOT NULL,
    held_behind     uuid,
    -- parked, or what an operator asked for: retry or skip.
    status          text        NOT NULL DEFAULT 'parked' CHECK (status IN ('parked', 'retry', 'skip')),
    parked_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projector, event_id)
);
CREATE INDEX parked_events_stream_idx ON parked_events (projector, stream_id, transaction_id, global_position);

-- Messages a worker has processed: a redelivered message id has no second effect.
CREATE TABLE processed_messages (
    consumer     text        NOT NULL,
    message_id   text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
