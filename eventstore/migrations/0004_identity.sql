-- Password hashes, kept apart from the events: the log is immutable and copied widely, a
-- credential must be replaceable and erasable. The hash string names its algorithm and
-- parameters (scrypt, PHC format). Forward-only.
CREATE TABLE user_credentials (
    user_id       uuid        PRIMARY KEY,
    password_hash text        NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
