-- Knowledge: what the log does not hold. Forward-only.
--
-- A document's bytes are not events: they live here, addressed by their sha256 within their
-- knowledge base, and a deleted document's bytes are removed (the log keeps only the hash).
CREATE TABLE knowledge_blobs (
    knowledge_base_id uuid        NOT NULL,
    sha256            text        NOT NULL,
    media_type        text        NOT NULL,
    bytes             bytea       NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (knowledge_base_id, sha256)
);

-- The index: the chunks of each document's current indexed version, written by the indexing
-- worker. A chunk's id is derived from (document, version, chunker settings, ordinal), so a
-- retried or redelivered run writes the same rows. The text is searched through a generated
-- tsvector (GIN); the vector is the embedder's, normalised, as little-endian float32.
CREATE TABLE knowledge_chunks (
    chunk_id          uuid        PRIMARY KEY,
    knowledge_base_id uuid        NOT NULL,
    document_id       uuid        NOT NULL,
    document_version  integer     NOT NULL,
    ordinal           integer     NOT NULL,
    heading_path      text[]      NOT NULL,
    -- The heading path as one text, searched with the body.
    heading_text      text        NOT NULL,
    start_offset      integer     NOT NULL,
    end_offset        integer     NOT NULL,
    body              text        NOT NULL,
    content_hash      text        NOT NULL,
    tokens            integer     NOT NULL,
    model             text        NOT NULL,
    vector            bytea       NOT NULL,
    search            tsvector    GENERATED ALWAYS AS (to_tsvector('english'::regconfig, heading_text || ' ' || body)) STORED
);
CREATE INDEX knowledge_chunks_document_idx ON knowledge_chunks (knowledge_base_id, document_id, document_version);
CREATE INDEX knowledge_chunks_search_idx ON knowledge_chunks USING gin (search);

-- Moves with every change of a base's chunks: a process keeps a base's vectors in memory and
-- reloads them when this moved.
CREATE TABLE knowledge_index_generations (
    knowledge_base_id uuid   PRIMARY KEY,
    generation        bigint NOT NULL
);

-- Vectors by (hash of the embedded text, model): a re-index or a rebuild never pays twice.
CREATE TABLE knowledge_embedding_cache (
    content_hash text        NOT NULL,
    model        text        NOT NULL,
    vector       bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (content_hash, model)
);
