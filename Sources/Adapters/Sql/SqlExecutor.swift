import Commands
import Events
import Foundation
import Synchronization
import Logging
import NIOCore
import PostgresNIO
import Workers

/// Layers two to four of Text-to-SQL's defence, on the platform's own data: a login role that
/// may only read the `chronicle_data` views (which show the bound owner's rows), a read-only
/// transaction with its own limits that is always rolled back, an `EXPLAIN` cost gate, and caps
/// on what comes back. It runs exactly the bytes it is given, through the extended protocol only
/// (one statement, no stacking); the validator (layer one) is the caller's to apply, so each
/// layer can be tested on its own.
public struct SqlExecutor: Sendable {
    public struct Limits: Sendable, Equatable {
        public var statementTimeout: Duration = .seconds(5)
        public var maximumCost: Double = 1_000_000
        public var maximumRows = 1000
        public var maximumBytes = 1 << 20
        public var workMemKiB = 4096
        public var tempFileLimitKiB = 65_536

        public init() {}
    }

    /// Whose rows a query may see.
    public struct Viewer: Sendable, Equatable {
        public var ownerID: String
        public var tenantID: String?
        public var isAdmin: Bool

        public init(ownerID: String, tenantID: String?, isAdmin: Bool) {
            self.ownerID = ownerID
            self.tenantID = tenantID
            self.isAdmin = isAdmin
        }
    }

    /// What came back (the worker records it as it is).
    public typealias Result = SqlRunResult

    /// Why a query did not run to its end, by layer, in words a user can act on.
    public typealias Refusal = SqlRunRefusal

    /// The application's connection (bindings, views, grants) and the reader's.
    let admin: PostgresClient
    let reader: PostgresClient
    let readerRole: String
    let limits: Limits
    let logger: Logger
    /// Set once the role and the views are known to exist; a query that finds a view gone (a
    /// rebuild dropped it) clears it and prepares again.
    let prepared = Flag()

    final class Flag: Sendable {
        private let value = Mutex(false)
        func withLock<T>(_ body: (inout Bool) -> T) -> T { value.withLock { body(&$0) } }
    }

    public init(admin: PostgresClient, reader: PostgresClient, readerRole: String, limits: Limits = .init(), logger: Logger) {
        self.admin = admin
        self.reader = reader
        self.readerRole = readerRole
        self.limits = limits
        self.logger = logger
    }

    /// The curated views over the read models: name, source read model, columns, and comments
    /// for the model. Each shows the bound owner's rows (an admin: the tenant's).
    public struct View: Sendable {
        public var name: String
        public var source: String
        public var comment: String
        public var columns: [(name: String, comment: String)]
    }

    /// Revoked from PUBLIC by `prepare` where it may (see there).
    public static let revoked = [
        "pg_sleep", "pg_sleep_for", "pg_sleep_until", "pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock",
        "pg_try_advisory_lock_shared", "pg_advisory_xact_lock", "pg_advisory_xact_lock_shared", "pg_try_advisory_xact_lock",
        "pg_try_advisory_xact_lock_shared", "pg_notify", "set_config", "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema",
        "cursor_to_xml", "cursor_to_xmlschema", "table_to_xml", "table_to_xmlschema", "table_to_xml_and_xmlschema", "schema_to_xml",
        "schema_to_xmlschema", "schema_to_xml_and_xmlschema", "database_to_xml", "database_to_xmlschema", "database_to_xml_and_xmlschema",
        "lo_create", "lo_creat", "lo_open", "lo_put", "lo_get", "lo_from_bytea", "lo_unlink", "lo_import", "lo_export", "loread", "lowrite",
        "pg_cancel_backend", "pg_terminate_backend", "pg_reload_conf", "nextval", "setval", "currval", "lastval",
    ]

    public static let views: [View] = [
        View(
            name: "agents", source: "agents_by_owner", comment: "Agents: each a model, instructions and tools, owned by one user",
            columns: [
                ("agent_id", "The agent's id"), ("owner_id", "The user who owns it"), ("name", "Its name"), ("model", "Its language model"),
                ("status", "active or deleted"), ("created_at", "When it was created"), ("updated_at", "When it last changed"),
            ]),
        View(
            name: "agent_runs", source: "agent_run_analytics", comment: "Agent runs (executions): one row per run",
            columns: [
                ("execution_id", "The run's id"), ("agent_id", "The agent that ran"), ("owner_id", "The user who asked for the run"),
                ("model", "The language model"), ("status", "pending, running, completed, failed, timed_out or cancelled"),
                ("requested_at", "When it was asked for"), ("finished_at", "When it ended"),
                ("duration_ms", "How long a completed run took, in milliseconds"), ("attempts", "Attempts started"),
                ("model_calls", "Calls to the model"), ("tool_calls", "Tool calls"), ("prompt_tokens", "Prompt tokens"),
                ("completion_tokens", "Completion tokens"), ("cost", "Cost in US dollars"),
            ]),
        View(
            name: "sandbox_runs", source: "sandbox_run_analytics", comment: "Sandboxed Python runs: one row per run",
            columns: [
                ("execution_id", "The run's id"), ("owner_id", "The user who ran it"), ("language", "The language"),
                ("status", "pending, running, completed, failed, timed_out or limit_exceeded"), ("limit_name", "The limit it hit"),
                ("requested_at", "When it was asked for"), ("finished_at", "When it ended"), ("duration_ms", "Wall time in milliseconds"),
                ("cpu_ms", "CPU time in milliseconds"), ("peak_memory_bytes", "Peak memory in bytes"),
            ]),
    ]

    /// Creates the reader role if this login may (or leaves it to the operator), grants it the
    /// views and the binding functions, and creates every view whose read model exists. Safe to
    /// run any number of times; a rebuild that replaced a read model drops the views over it, so
    /// this runs before every query and only creates what is missing.
    public func prepare() async throws {
        try await Self.prepare(admin: admin, readerRole: readerRole, limits: limits, logger: logger)
        prepared.withLock { $0 = true }
    }

    /// `prepare()` before there is a reader connection (the role may not exist yet).
    public static func prepare(admin: PostgresClient, readerRole: String, limits: Limits, logger: Logger) async throws {
        func execute(_ sql: String) async throws {
            _ = try await admin.query(PostgresQuery(unsafeSQL: sql), logger: logger).collect()
        }
        let existing = try await all(admin.query(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'chronicle_data'",
            logger: logger
        ).decode(String.self))
        let missing = views.filter { !existing.contains($0.name) }
        let roleExists = try await all(admin.query("SELECT count(*) FROM pg_roles WHERE rolname = \(readerRole)", logger: logger)
            .decode(Int64.self)).first ?? 0
        if roleExists > 0, missing.isEmpty { return }
        let role = identifier(readerRole)
        if roleExists == 0 {
            do {
                try await execute("CREATE ROLE \(role) LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION")
            } catch where PostgresErrors.sqlState(error) == PostgresErrors.uniqueViolation || PostgresErrors.sqlState(error) == "42710" {
                // Another process (or database of the same server) created it first.
            } catch {
                logger.warning("the SQL reader role does not exist and this login may not create it", metadata: ["role": "\(readerRole)"])
                throw Refusal(layer: "role", reason: "the reader role \(readerRole) does not exist; create it (LOGIN, no other rights)")
            }
        }
        // Set where allowed (a superuser's): the reader's spill to disk is bounded in every session.
        try? await execute("ALTER ROLE \(role) SET temp_file_limit = '\(limits.tempFileLimitKiB)kB'")
        // Functions no query needs and an attacker would want: sleeping, locks, notifications,
        // settings, running SQL from a string, large objects, signals, sequences. Revoked from
        // PUBLIC in this database (kept for the application's own login), where this login owns
        // them (a superuser); elsewhere the other layers stop them and the operator is told.
        do {
            try await execute("""
                DO $$
                DECLARE f regprocedure;
                BEGIN
                    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
                             WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname = ANY (ARRAY[\(revoked.map(literal).joined(separator: ", "))])
                    LOOP
                        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, current_user);
                        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
                    END LOOP;
                END
                $$
                """)
        } catch {
            logger.warning("dangerous functions could not be revoked from PUBLIC (this login does not own them); revoke them as a superuser")
        }
        for view in missing {
            let sources = try await all(admin.query("SELECT to_regclass(\(view.source)) IS NOT NULL", logger: logger).decode(Bool.self))
            guard sources.first == true else { continue }
            let columns = view.columns.map { "r.\($0.name)" }.joined(separator: ", ")
            try await execute("""
                CREATE OR REPLACE VIEW chronicle_data.\(view.name) WITH (security_barrier) AS
                SELECT \(columns) FROM public.\(view.source) r JOIN public.sql_sessions s ON s.pid = pg_backend_pid()
                WHERE r.owner_id = s.owner_id OR (s.is_admin AND r.tenant_id IS NOT DISTINCT FROM s.tenant_id)
                """)
            try await execute("COMMENT ON VIEW chronicle_data.\(view.name) IS \(literal(view.comment))")
            for column in view.columns {
                try await execute("COMMENT ON COLUMN chronicle_data.\(view.name).\(column.name) IS \(literal(column.comment))")
            }
        }
        try await execute("GRANT USAGE ON SCHEMA chronicle_data TO \(role)")
        try await execute("GRANT SELECT ON ALL TABLES IN SCHEMA chronicle_data TO \(role)")
        try await execute("GRANT EXECUTE ON FUNCTION public.chronicle_sql_bind(uuid), public.chronicle_sql_unbind() TO \(role)")
    }

    static func all<S: AsyncSequence>(_ sequence: S) async throws -> [S.Element] {
        var elements: [S.Element] = []
        for try await element in sequence { elements.append(element) }
        return elements
    }

    static func identifier(_ name: String) -> String { "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
    static func literal(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "''") + "'" }

    /// Runs `sql` as the reader, for the viewer, inside a read-only transaction that is rolled
    /// back, after the cost gate; the reader's session is unbound and reset after it.
    public func run(_ sql: String, as viewer: Viewer) async throws -> Result {
        if !prepared.withLock({ $0 }) { try await prepare() }
        do {
            return try await runPrepared(sql, as: viewer)
        } catch let refusal as Refusal where refusal.code == "42P01" {
            // A view was dropped under us (a rebuild of its read model): make it again, once.
            prepared.withLock { $0 = false }
            try await prepare()
            return try await runPrepared(sql, as: viewer)
        }
    }

    func runPrepared(_ sql: String, as viewer: Viewer) async throws -> Result {
        let token = UUID()
        // Bindings never redeemed (a reader connection that failed first) expire after a minute;
        // each new one clears those older than five.
        try await admin.query("""
            WITH expired AS (DELETE FROM sql_bindings WHERE created_at < now() - interval '5 minutes')
            INSERT INTO sql_bindings (token, owner_id, tenant_id, is_admin) VALUES (\(token), \(viewer.ownerID), \(viewer.tenantID), \(viewer.isAdmin))
            """, logger: logger)
        return try await reader.withConnection { connection in
            do {
                _ = try await connection.query("SELECT public.chronicle_sql_bind(\(token))", logger: logger).collect()
                let result = try await runBound(sql, on: connection)
                try await reset(connection)
                return result
            } catch {
                try? await reset(connection)
                throw Self.refusal(error)
            }
        }
    }

    /// Rollback, unbind, and forget every setting, lock and prepared thing the query left.
    func reset(_ connection: PostgresConnection) async throws {
        _ = try? await connection.query("ROLLBACK", logger: logger).collect()
        _ = try await connection.query("SELECT public.chronicle_sql_unbind()", logger: logger).collect()
        _ = try await connection.query("DISCARD ALL", logger: logger).collect()
    }

    func runBound(_ sql: String, on connection: PostgresConnection) async throws -> Result {
        try await Self.runReadOnly(sql, on: connection, searchPath: "chronicle_data, pg_catalog", limits: limits, logger: logger)
    }

    /// Layers three and four on any connection: a read-only transaction with its own limits and
    /// search path (the exposed schemas, then the catalog, so an exposed name wins), the cost gate,
    /// the query, and the caps. The caller rolls back.
    static func runReadOnly(_ sql: String, on connection: PostgresConnection, searchPath: String, limits: Limits, logger: Logger) async throws -> Result {
        for statement in [
            "BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY",
            "SET LOCAL statement_timeout = '\(Int(limits.statementTimeout.components.seconds * 1000))ms'",
            "SET LOCAL lock_timeout = '1s'",
            "SET LOCAL work_mem = '\(limits.workMemKiB)kB'",
            "SET LOCAL search_path = \(searchPath)",
        ] {
            _ = try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger).collect()
        }
        // The cost gate: the planner's estimate for exactly these bytes.
        var cost = 0.0
        for try await row in try await connection.query(PostgresQuery(unsafeSQL: "EXPLAIN (FORMAT JSON) " + sql), logger: logger) {
            guard let cell = row.first, case .array(let plans) = Self.value(cell), case .object(let top)? = plans.first,
                case .object(let node)? = top["Plan"], case .number(let total)? = node["Total Cost"]
            else { continue }
            cost = total
        }
        guard cost <= limits.maximumCost else {
            throw Refusal(layer: "cost", reason: "the plan's estimated cost is \(Int(cost)); at most \(Int(limits.maximumCost))")
        }
        let started = ContinuousClock.now
        var columns: [String] = []
        var rows: [[JSONValue]] = []
        var count = 0, bytes = 0
        var truncated = false
        let stream = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
        for try await row in stream {
            count += 1
            if columns.isEmpty { columns = row.map(\.columnName) }
            if truncated { continue }
            let values = row.map(Self.value)
            let size = values.reduce(0) { $0 + Self.size($1) }
            if rows.count >= limits.maximumRows || bytes + size > limits.maximumBytes {
                truncated = true
                continue
            }
            bytes += size
            rows.append(values)
        }
        let elapsed = ContinuousClock.now - started
        return Result(
            columns: columns, rows: rows, rowCount: count, truncated: truncated,
            durationMs: Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000), cost: cost)
    }

    static func size(_ value: JSONValue) -> Int {
        switch value {
        case .string(let text): text.utf8.count
        case .null: 4
        default: 8
        }
    }

    /// A cell as JSON, by its type; a type without a decoder here reads as its description.
    static func value(_ cell: PostgresCell) -> JSONValue {
        guard cell.bytes != nil else { return .null }
        switch cell.dataType {
        case .int2, .int4, .int8: if let number = try? cell.decode(Int64.self) { return .number(Double(number)) }
        case .float4, .float8: if let number = try? cell.decode(Double.self) { return .number(number) }
        case .numeric: if let number = try? cell.decode(Decimal.self) { return .string("\(number)") }
        case .bool: if let flag = try? cell.decode(Bool.self) { return .bool(flag) }
        case .timestamp, .timestamptz, .date: if let date = try? cell.decode(Date.self) { return .string(Timestamp.format(date)) }
        case .uuid: if let id = try? cell.decode(UUID.self) { return .string(id.uuidString.lowercased()) }
        case .json, .jsonb:
            if var buffer = cell.bytes {
                if cell.dataType == .jsonb, cell.format == .binary { buffer.moveReaderIndex(forwardBy: 1) }
                if let json = try? EventCoding.decode(JSONValue.self, from: Data(buffer.readableBytesView)) { return json }
            }
        default: break
        }
        if let text = try? cell.decode(String.self) { return .string(text) }
        return .string("<\(cell.dataType)>")
    }

    /// The database's refusal as a layer and a reason.
    static func refusal(_ error: Error) -> Error {
        if error is Refusal { return error }
        guard let psql = error as? PSQLError, let code = psql.serverInfo?[.sqlState] else { return error }
        let message = psql.serverInfo?[.message] ?? "refused"
        switch code {
        case "57014": return Refusal(layer: "transaction", reason: "the query ran past its time limit and was cancelled")
        case "25006": return Refusal(layer: "transaction", reason: "the transaction is read-only: \(message)")
        case "42501": return Refusal(layer: "role", reason: "the reader role may not do that: \(message)")
        case "42601": return Refusal(layer: "protocol", reason: message)
        case "53400", "53200": return Refusal(layer: "transaction", reason: "the query hit a resource limit: \(message)")
        default: return Refusal(layer: "database", reason: "\(message) (\(code))", code: code)
        }
    }
}

extension SqlExecutor {
    /// The exposed schema, introspected as the seed does (information_schema with
    /// `obj_description` and `col_description`), after making sure the views exist.
    public func schema() async throws -> SqlSchema {
        try await prepare()
        let rows = try await Self.all(admin.query("""
            SELECT c.table_name, c.column_name, c.data_type, obj_description(format('chronicle_data.%I', c.table_name)::regclass, 'pg_class'),
                   col_description(format('chronicle_data.%I', c.table_name)::regclass, c.ordinal_position::int)
            FROM information_schema.columns c
            WHERE c.table_schema = 'chronicle_data'
            ORDER BY c.table_name, c.ordinal_position
            """, logger: logger).decode((String, String, String, String?, String?).self))
        var relations: [SqlSchema.Relation] = []
        for (table, column, type, tableComment, columnComment) in rows {
            if relations.last?.name != table {
                relations.append(.init(schema: "chronicle_data", name: table, comment: tableComment, columns: []))
            }
            relations[relations.count - 1].columns.append(.init(name: column, type: type, comment: columnComment))
        }
        return SqlSchema(relations: relations)
    }

    /// The validator's policy over the platform's own data, from the views' declarations alone
    /// (what `chronicle sql revalidate` checks history against, with no database at hand).
    public static var ownDataValidator: SqlValidator {
        SqlValidator(policy: .init(schemas: ["chronicle_data"], relations: Set(views.map { "chronicle_data.\($0.name)" })))
    }

    /// The validator's policy over a schema: its schema names and relations, nothing else.
    public static func validator(for schema: SqlSchema) -> SqlValidator {
        SqlValidator(policy: .init(
            schemas: Array(Set(schema.relations.map(\.schema))).sorted(), relations: Set(schema.relations.map { "\($0.schema).\($0.name)" })))
    }

    /// The worker's source over the platform's own data.
    public var ownData: SqlQueryWorker.Source {
        SqlQueryWorker.Source(
            schema: { try await schema() },
            validator: { Self.validator(for: $0) },
            run: { sql, request in
                try await run(sql, as: Viewer(ownerID: request.ownerID, tenantID: request.tenantID, isAdmin: request.scope == .tenant))
            })
    }
}
