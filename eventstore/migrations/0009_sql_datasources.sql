-- Text-to-SQL: the credentials of registered outside databases, sealed (AES-GCM, key from
-- configuration) and kept outside the log, like passwords: the log is immutable and copied,
-- a credential must be replaceable and erasable. Forward-only.
CREATE TABLE sql_datasource_credentials (
    datasource_id uuid        PRIMARY KEY,
    sealed        bytea       NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
