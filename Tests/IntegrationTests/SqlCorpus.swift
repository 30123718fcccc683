import Adapters
import Foundation
import Testing

/// Text-to-SQL's test corpora, over the platform's curated views (schema `chronicle_data`).
public enum SqlCorpus {
    public static let policy = SqlValidator.Policy(
        schemas: ["chronicle_data"],
        relations: ["chronicle_data.agents", "chronicle_data.agent_runs", "chronicle_data.sandbox_runs"])

    public struct Attack: Sendable, CustomTestStringConvertible {
        public var name: String
        public var sql: String
        /// The validator rule that must fire.
        public var rule: String
        public var testDescription: String { name }
    }

    public static let attacks: [Attack] = [
        .init(name: "stacked statements", sql: "SELECT 1; DROP TABLE chronicle_data.agents", rule: "sql.one_statement"),
        .init(name: "COMMIT escape", sql: "COMMIT; DELETE FROM chronicle_data.agents", rule: "sql.one_statement"),
        .init(name: "a lone COMMIT", sql: "COMMIT", rule: "sql.select_only"),
        .init(name: "data-modifying CTE", sql: "WITH gone AS (DELETE FROM agents RETURNING *) SELECT * FROM gone", rule: "sql.data_modifying_cte"),
        .init(name: "CTE that inserts", sql: "WITH x AS (INSERT INTO agents (name) VALUES ('x') RETURNING 1) SELECT 1", rule: "sql.data_modifying_cte"),
        .init(name: "SELECT INTO", sql: "SELECT * INTO stolen FROM agents", rule: "sql.select_into"),
        .init(name: "COPY to a file", sql: "COPY agents TO '/tmp/agents.csv'", rule: "sql.select_only"),
        .init(name: "COPY to a program", sql: "COPY (SELECT 1) TO PROGRAM 'id'", rule: "sql.select_only"),
        .init(name: "pg_read_file", sql: "SELECT pg_read_file('/etc/passwd')", rule: "sql.function_not_allowed"),
        .init(name: "large object import", sql: "SELECT lo_import('/etc/passwd')", rule: "sql.function_not_allowed"),
        .init(name: "large object read", sql: "SELECT lo_get(16384)", rule: "sql.function_not_allowed"),
        .init(name: "dblink", sql: "SELECT * FROM dblink('host=evil', 'SELECT 1') AS t(x int)", rule: "sql.function_not_allowed"),
        .init(name: "pg_sleep", sql: "SELECT pg_sleep(60)", rule: "sql.function_not_allowed"),
        .init(name: "set_config of the owner", sql: "SELECT set_config('chronicle.sql_owner', 'victim', true)", rule: "sql.function_not_allowed"),
        .init(name: "set_config of the role", sql: "SELECT pg_catalog.set_config('role', 'postgres', false)", rule: "sql.function_not_allowed"),
        .init(name: "set_config of the timeout", sql: "SELECT set_config('statement_timeout', '0', true), * FROM agents", rule: "sql.function_not_allowed"),
        .init(name: "SET statement", sql: "SET statement_timeout = 0", rule: "sql.select_only"),
        .init(name: "advisory lock", sql: "SELECT pg_advisory_lock(1)", rule: "sql.function_not_allowed"),
        .init(name: "terminate a backend", sql: "SELECT pg_terminate_backend(pid) FROM pg_stat_activity", rule: "sql.function_not_allowed"),
        .init(name: "nextval", sql: "SELECT nextval('events_global_position_seq')", rule: "sql.function_not_allowed"),
        .init(name: "pg_notify", sql: "SELECT pg_notify('chronicle_events', 'x')", rule: "sql.function_not_allowed"),
        .init(name: "query_to_xml runs SQL from a string", sql: "SELECT query_to_xml('SELECT * FROM pg_authid', true, true, '')", rule: "sql.function_not_allowed"),
        .init(name: "xpath over a string query", sql: "SELECT * FROM xmltable('/' PASSING query_to_xml('select 1', true, true, '') COLUMNS x text)", rule: "sql.node_not_allowed"),
        .init(name: "comment hides a second statement", sql: "SELECT 1 /* ; */ ; DELETE FROM agents -- ", rule: "sql.one_statement"),
        .init(name: "dollar quote hides a statement", sql: "SELECT $$ ; $$; DROP TABLE agents", rule: "sql.one_statement"),
        .init(name: "EXPLAIN ANALYZE runs the query", sql: "EXPLAIN ANALYZE SELECT * FROM agents", rule: "sql.select_only"),
        .init(name: "FOR UPDATE", sql: "SELECT * FROM agents FOR UPDATE", rule: "sql.locking_clause"),
        .init(name: "FOR SHARE in a subquery", sql: "SELECT * FROM (SELECT * FROM agents FOR SHARE) a", rule: "sql.locking_clause"),
        .init(name: "recursive CTE without end", sql: "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r", rule: "sql.recursive_cte"),
        .init(name: "a system catalog, qualified", sql: "SELECT rolpassword FROM pg_catalog.pg_authid", rule: "sql.system_catalog"),
        .init(name: "a system catalog, unqualified", sql: "SELECT usename FROM pg_user", rule: "sql.system_catalog"),
        .init(name: "information_schema", sql: "SELECT * FROM information_schema.tables", rule: "sql.system_catalog"),
        .init(name: "another schema", sql: "SELECT * FROM public.events", rule: "sql.relation_not_allowed"),
        .init(name: "an unexposed table", sql: "SELECT * FROM user_credentials", rule: "sql.relation_not_allowed"),
        .init(name: "regclass cast reads the catalog", sql: "SELECT 'pg_authid'::regclass", rule: "sql.type_not_allowed"),
        .init(name: "current_user", sql: "SELECT current_user", rule: "sql.function_not_allowed"),
        .init(name: "a parameter", sql: "SELECT * FROM agents WHERE owner_id = $1", rule: "sql.parameter"),
        .init(name: "a function in another schema", sql: "SELECT public.evil()", rule: "sql.function_not_allowed"),
        .init(name: "an operator in another schema", sql: "SELECT 1 OPERATOR(public.+) 2", rule: "sql.operator_not_allowed"),
        .init(name: "a huge generate_series through a cartesian join", sql: "SELECT count(*) FROM agents, agent_runs, sandbox_runs, pg_class", rule: "sql.system_catalog"),
        .init(name: "a prepared statement", sql: "PREPARE p AS SELECT 1", rule: "sql.select_only"),
        .init(name: "DO block", sql: "DO $$ BEGIN PERFORM 1; END $$", rule: "sql.select_only"),
        .init(name: "LISTEN", sql: "LISTEN chronicle_events", rule: "sql.select_only"),
        .init(name: "a NUL byte", sql: "SELECT 1\u{0}; DROP TABLE agents", rule: "sql.nul"),
        .init(name: "text that does not parse", sql: "SELEC * FRM agents", rule: "sql.parse_error"),
    ]

    /// Analytic queries a user may well ask for: every one must be admitted.
    public static let legitimate: [String] = [
        "SELECT * FROM agents",
        "SELECT name, model FROM agents WHERE status = 'active' ORDER BY created_at DESC LIMIT 10",
        "SELECT count(*) FROM agent_runs",
        "SELECT status, count(*) FROM agent_runs GROUP BY status ORDER BY 2 DESC",
        "SELECT model, sum(prompt_tokens + completion_tokens) AS tokens, sum(cost) FROM agent_runs GROUP BY model",
        "SELECT a.name, count(r.execution_id) FROM agents a LEFT JOIN agent_runs r ON r.agent_id = a.agent_id GROUP BY a.name",
        "SELECT a.name, r.status FROM chronicle_data.agents a JOIN chronicle_data.agent_runs r USING (agent_id)",
        "SELECT date_trunc('day', requested_at) AS day, count(*) FROM agent_runs GROUP BY 1 ORDER BY 1",
        "SELECT count(*) FILTER (WHERE status = 'completed') AS ok, count(*) FILTER (WHERE status = 'failed') AS failed FROM agent_runs",
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50, percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) FROM agent_runs",
        "SELECT percentile_disc(0.9) WITHIN GROUP (ORDER BY cpu_ms) FROM sandbox_runs WHERE status = 'completed'",
        "SELECT agent_id, duration_ms, rank() OVER (PARTITION BY agent_id ORDER BY duration_ms DESC) FROM agent_runs",
        "SELECT execution_id, cost, sum(cost) OVER (ORDER BY requested_at ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running FROM agent_runs",
        "SELECT execution_id, lag(duration_ms) OVER (ORDER BY requested_at), lead(duration_ms) OVER (ORDER BY requested_at) FROM agent_runs",
        "SELECT row_number() OVER (ORDER BY cost DESC) AS n, execution_id FROM agent_runs",
        "WITH daily AS (SELECT date_trunc('day', requested_at) AS d, sum(cost) AS c FROM agent_runs GROUP BY 1) SELECT d, c, avg(c) OVER (ORDER BY d ROWS 6 PRECEDING) FROM daily",
        "WITH a AS (SELECT agent_id FROM agents), b AS (SELECT agent_id, count(*) AS n FROM agent_runs GROUP BY 1) SELECT * FROM a JOIN b USING (agent_id)",
        "SELECT * FROM agent_runs WHERE requested_at > now() - interval '7 days'",
        "SELECT * FROM agent_runs WHERE requested_at >= current_date - 30",
        "SELECT extract(hour FROM requested_at) AS hour, count(*) FROM agent_runs GROUP BY 1",
        "SELECT date_part('dow', requested_at), avg(duration_ms)::numeric(10, 1) FROM agent_runs GROUP BY 1",
        "SELECT age(finished_at, requested_at) FROM agent_runs WHERE finished_at IS NOT NULL",
        "SELECT to_char(requested_at, 'YYYY-MM') AS month, round(sum(cost)::numeric, 4) FROM agent_runs GROUP BY 1 ORDER BY 1",
        "SELECT CASE WHEN duration_ms < 1000 THEN 'fast' WHEN duration_ms < 10000 THEN 'ok' ELSE 'slow' END AS speed, count(*) FROM agent_runs GROUP BY 1",
        "SELECT coalesce(limit_name, 'none'), count(*) FROM sandbox_runs GROUP BY 1",
        "SELECT language, max(peak_memory_bytes) / 1048576.0 AS mib FROM sandbox_runs GROUP BY language",
        "SELECT * FROM agents WHERE name ILIKE '%bot%'",
        "SELECT * FROM agents WHERE name LIKE 'A%' AND model IN ('gpt-4o', 'gpt-4o-mini')",
        "SELECT * FROM agent_runs WHERE agent_id IN (SELECT agent_id FROM agents WHERE status = 'active')",
        "SELECT * FROM agents a WHERE EXISTS (SELECT 1 FROM agent_runs r WHERE r.agent_id = a.agent_id AND r.status = 'failed')",
        "SELECT name, (SELECT count(*) FROM agent_runs r WHERE r.agent_id = a.agent_id) AS runs FROM agents a",
        "SELECT model, avg(cost) FROM agent_runs GROUP BY model HAVING count(*) > 5",
        "SELECT status FROM agent_runs UNION SELECT status FROM sandbox_runs",
        "SELECT agent_id FROM agents EXCEPT SELECT agent_id FROM agent_runs",
        "SELECT DISTINCT model FROM agent_runs",
        "SELECT DISTINCT ON (agent_id) agent_id, requested_at FROM agent_runs ORDER BY agent_id, requested_at DESC",
        "SELECT greatest(prompt_tokens, completion_tokens), least(prompt_tokens, completion_tokens) FROM agent_runs",
        "SELECT nullif(tool_calls, 0), abs(cost - 1), ceil(cost), floor(cost) FROM agent_runs",
        "SELECT string_agg(name, ', ' ORDER BY name) FROM agents",
        "SELECT array_agg(DISTINCT model) FROM agent_runs",
        "SELECT model, stddev(duration_ms), variance(duration_ms) FROM agent_runs GROUP BY model",
        "SELECT width_bucket(duration_ms, 0, 10000, 10) AS bucket, count(*) FROM agent_runs GROUP BY 1 ORDER BY 1",
        "SELECT d::date, count(r.execution_id) FROM generate_series(current_date - 6, current_date, interval '1 day') AS d LEFT JOIN agent_runs r ON r.requested_at::date = d::date GROUP BY 1 ORDER BY 1",
        "SELECT model, sum(cost) FROM agent_runs GROUP BY ROLLUP (model)",
        "SELECT lower(name), upper(model), length(name), substring(name FROM 1 FOR 3), trim(name) FROM agents",
        "SELECT concat(name, ' (', model, ')') FROM agents ORDER BY 1 NULLS LAST",
        "SELECT * FROM agent_runs WHERE cost BETWEEN 0.01 AND 1 AND duration_ms IS NOT NULL",
        "SELECT status, bool_and(tool_calls > 0), bool_or(attempts > 1) FROM agent_runs GROUP BY status",
        "SELECT * FROM agent_runs ORDER BY cost DESC NULLS LAST LIMIT 5 OFFSET 5",
        "SELECT count(*)::float / nullif(count(*) FILTER (WHERE status = 'failed'), 0) FROM agent_runs",
    ]
}
