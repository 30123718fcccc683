-- Text-to-SQL (see eventstore/README.md, "Text-to-SQL"). Forward-only.
--
-- Queries run on their own login role (chronicle_sql_reader by default), which may read the
-- views of schema chronicle_data and nothing else. Each view shows the rows of the owner bound
-- to the reading session: the application inserts a one-time binding, and the reader's
-- connection redeems it with chronicle_sql_bind before its query. The reader cannot write either
-- table, so a query cannot change whose rows it sees, whatever settings it changes.
CREATE SCHEMA chronicle_data;
COMMENT ON SCHEMA chronicle_data IS 'Your own data in Chronicle, one view per subject, for questions in SQL';

CREATE TABLE sql_bindings (
    token      uuid        PRIMARY KEY,
    owner_id   text        NOT NULL,
    tenant_id  text,
    is_admin   boolean     NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sql_sessions (
    pid       integer     PRIMARY KEY,
    owner_id  text        NOT NULL,
    tenant_id text,
    is_admin  boolean     NOT NULL,
    bound_at  timestamptz NOT NULL DEFAULT now()
);

-- Redeems a binding (at most a minute old, once) for the calling session.
CREATE FUNCTION chronicle_sql_bind(binding uuid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    b record;
BEGIN
    DELETE FROM public.sql_bindings WHERE token = binding AND created_at > now() - interval '1 minute'
        RETURNING owner_id, tenant_id, is_admin INTO b;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such binding' USING ERRCODE = '28000';
    END IF;
    INSERT INTO public.sql_sessions (pid, owner_id, tenant_id, is_admin)
        VALUES (pg_backend_pid(), b.owner_id, b.tenant_id, b.is_admin)
        ON CONFLICT (pid) DO UPDATE
        SET owner_id = excluded.owner_id, tenant_id = excluded.tenant_id, is_admin = excluded.is_admin, bound_at = now();
END;
$$;

-- Ends the calling session's binding: its views show nothing until the next one.
CREATE FUNCTION chronicle_sql_unbind() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    DELETE FROM public.sql_sessions WHERE pid = pg_backend_pid();
$$;

REVOKE ALL ON FUNCTION chronicle_sql_bind(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION chronicle_sql_unbind() FROM PUBLIC;
