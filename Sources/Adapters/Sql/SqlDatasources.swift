import Commands
import Crypto
import Events
import Foundation
import Logging
import PostgresNIO
import Workers

/// Outside PostgreSQL databases registered as Text-to-SQL data sources. Registration connects
/// and refuses a superuser, a role with a server-file or write-all membership, and a role that can
/// create in or write to an exposed schema; the URL is sealed with AES-GCM (key from
/// configuration) into `sql_datasource_credentials`, and the event records the source without
/// its secret. Queries run on the registered role itself (which can only read), in the same
/// read-only, rolled-back transaction with the cost gate and caps as the platform's own data.
public struct SqlDatasources: SqlDatasourceRegistry {
    let admin: PostgresClient
    let handler: CommandHandler<SqlDatasourceDecider>
    let key: SymmetricKey?
    let limits: SqlExecutor.Limits
    let logger: Logger

    public init(admin: PostgresClient, store: any EventStore, key: SymmetricKey?, limits: SqlExecutor.Limits, logger: Logger) {
        self.admin = admin
        handler = CommandHandler(store: store)
        self.key = key
        self.limits = limits
        self.logger = logger
    }

    /// A key from configuration: 32 bytes in base64.
    public static func key(base64 text: String) throws -> SymmetricKey {
        guard let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), raw.count == 32 else {
            throw DomainError(.invalid, code: .sqlDatasourceInvalid, "the credentials key must be 32 bytes in base64 (head -c 32 /dev/urandom | base64)")
        }
        return SymmetricKey(data: raw)
    }

    static func refuse(_ message: String) -> DomainError { DomainError(.invalid, code: .sqlDatasourceInvalid, message) }

    /// Checks the database, seals the URL and records the source.
    public func register(id: UUID, name: String, url: String, schemas: [String], owner: String, context: CommandContext) async throws -> SqlDatasourceRegistered {
        guard let key else {
            throw Self.refuse("outside data sources need CHRONICLE_SQL_CREDENTIALS_KEY, the key their credentials are sealed with")
        }
        let settings: PostgresSettings
        do {
            settings = try PostgresSettings(url: url)
        } catch {
            throw Self.refuse("url must be a postgres:// URL: \(error)")
        }
        try await check(settings, schemas: schemas)
        let registered = SqlDatasourceRegistered(
            datasourceID: id, ownerID: owner, name: name, host: settings.host, port: settings.port, database: settings.database,
            username: settings.username, schemas: schemas, registeredAt: context.now)
        let sealed = try AES.GCM.seal(Data(url.utf8), using: key, authenticating: Data(id.uuidString.lowercased().utf8)).combined ?? Data()
        try await admin.query("""
            INSERT INTO sql_datasource_credentials (datasource_id, sealed) VALUES (\(id), \(sealed))
            ON CONFLICT (datasource_id) DO UPDATE SET sealed = excluded.sealed, updated_at = now()
            """, logger: logger)
        let result = try await handler.handle(.register(registered), on: SqlDatasourceDecider.streamID(id), context: context)
        return result.state.registered ?? registered
    }

    /// Reachable, and a role that can only read what it exposes.
    func check(_ settings: PostgresSettings, schemas: [String]) async throws {
        do {
            try await ChronicleDatabase.preflight(settings, logger: logger, timeout: .seconds(5))
        } catch {
            throw Self.refuse("the database could not be reached as \(settings.redacted): \(PostgresErrors.summary(error))")
        }
        do {
            try await checkRole(settings, schemas: schemas)
        } catch let refusal as DomainError {
            throw refusal
        } catch {
            throw Self.refuse("the database could not be checked as \(settings.redacted): \(PostgresErrors.summary(error))")
        }
    }

    func checkRole(_ settings: PostgresSettings, schemas: [String]) async throws {
        try await ChronicleDatabase.withRunning(settings, logger: logger) { database in
            let client = database.client
            let role = try await SqlExecutor.all(client.query("""
                SELECT rolsuper OR rolbypassrls, EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                    WHERE m.member = r.oid AND g.rolname IN ('pg_write_all_data', 'pg_read_server_files', 'pg_write_server_files', 'pg_execute_server_program'))
                FROM pg_roles r WHERE r.rolname = current_user
                """, logger: logger).decode((Bool, Bool).self))
            if role.first?.0 == true { throw Self.refuse("\(settings.username) is a superuser (or bypasses row security): register a role that can only read") }
            if role.first?.1 == true { throw Self.refuse("\(settings.username) may write data or read server files through a membership: register a role that can only read") }
            for schema in schemas {
                let found = try await SqlExecutor.all(client.query(
                    "SELECT has_schema_privilege(current_user, \(schema), 'CREATE') FROM pg_namespace WHERE nspname = \(schema)", logger: logger
                ).decode(Bool.self))
                guard let creates = found.first else { throw Self.refuse("the schema \(schema) does not exist") }
                if creates { throw Self.refuse("\(settings.username) may create objects in \(schema): register a role that can only read") }
            }
            let writable = try await SqlExecutor.all(client.query("""
                SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = ANY(\(schemas)) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
                  AND has_table_privilege(current_user, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
                ORDER BY 1 LIMIT 10
                """, logger: logger).decode(String.self))
            if !writable.isEmpty {
                throw Self.refuse("\(settings.username) may write to \(writable.joined(separator: ", ")): register a role that can only read")
            }
        }
    }

    /// The source's registration, if it exists and the viewer may use it.
    public func registration(_ id: UUID) async throws -> SqlDatasourceRegistered? {
        let (state, _) = try await handler.load(SqlDatasourceDecider.streamID(id).description)
        return state.status == .registered ? state.registered : nil
    }

    public func remove(_ id: UUID, context: CommandContext) async throws {
        _ = try await handler.handle(.remove(.init(datasourceID: id, removedAt: context.now)), on: SqlDatasourceDecider.streamID(id), context: context)
        try await admin.query("DELETE FROM sql_datasource_credentials WHERE datasource_id = \(id)", logger: logger)
    }

    /// The sealed URL, opened.
    func settings(_ id: UUID) async throws -> PostgresSettings {
        guard let key else { throw SqlRunRefusal(layer: "datasource", reason: "no credentials key is configured") }
        let rows = try await SqlExecutor.all(admin.query(
            "SELECT sealed FROM sql_datasource_credentials WHERE datasource_id = \(id)", logger: logger).decode(Data.self))
        guard let sealed = rows.first else { throw SqlRunRefusal(layer: "datasource", reason: "the data source has no credentials") }
        let url = try AES.GCM.open(try AES.GCM.SealedBox(combined: sealed), using: key, authenticating: Data(id.uuidString.lowercased().utf8))
        return try PostgresSettings(url: String(decoding: url, as: UTF8.self))
    }

    /// Its exposed schemas, introspected as the seed does.
    public func schema(_ id: UUID) async throws -> SqlSchema {
        guard let registered = try await registration(id) else { throw SqlRunRefusal(layer: "datasource", reason: "no such data source") }
        let settings = try await settings(id)
        do {
            return try await introspect(settings, schemas: registered.schemas)
        } catch let refusal as SqlRunRefusal {
            throw refusal
        } catch {
            throw SqlRunRefusal(layer: "datasource", reason: "the database could not be read as \(settings.redacted): \(PostgresErrors.summary(error))")
        }
    }

    func introspect(_ settings: PostgresSettings, schemas: [String]) async throws -> SqlSchema {
        try await ChronicleDatabase.withRunning(settings, logger: logger) { database in
            let rows = try await SqlExecutor.all(database.client.query("""
                SELECT c.table_schema, c.table_name, c.column_name, c.data_type,
                       obj_description(format('%I.%I', c.table_schema, c.table_name)::regclass, 'pg_class'),
                       col_description(format('%I.%I', c.table_schema, c.table_name)::regclass, c.ordinal_position::int)
                FROM information_schema.columns c
                WHERE c.table_schema = ANY(\(schemas))
                ORDER BY c.table_schema, c.table_name, c.ordinal_position
                """, logger: logger).decode((String, String, String, String, String?, String?).self))
            var relations: [SqlSchema.Relation] = []
            for (schema, table, column, type, tableComment, columnComment) in rows {
                if relations.last?.schema != schema || relations.last?.name != table {
                    relations.append(.init(schema: schema, name: table, comment: tableComment, columns: []))
                }
                relations[relations.count - 1].columns.append(.init(name: column, type: type, comment: columnComment))
            }
            return SqlSchema(relations: relations)
        }
    }

    /// The worker's source over one registered database.
    public func source(_ id: UUID) -> SqlQueryWorker.Source {
        SqlQueryWorker.Source(
            schema: { try await schema(id) },
            validator: { SqlExecutor.validator(for: $0) },
            run: { sql, request in
                guard let registered = try await registration(id), registered.ownerID == request.ownerID || request.scope == .tenant else {
                    throw SqlRunRefusal(layer: "datasource", reason: "no such data source")
                }
                let settings = try await settings(id)
                let path = (registered.schemas.map { SqlExecutor.identifier($0) } + ["pg_catalog"]).joined(separator: ", ")
                do {
                    return try await ChronicleDatabase.withRunning(settings, logger: logger) { database in
                        try await database.client.withConnection { connection in
                            let result = try await SqlExecutor.runReadOnly(sql, on: connection, searchPath: path, limits: limits, logger: logger)
                            _ = try await connection.query("ROLLBACK", logger: logger).collect()
                            return result
                        }
                    }
                } catch {
                    let mapped = SqlExecutor.refusal(error)
                    if mapped is SqlRunRefusal { throw mapped }
                    throw SqlRunRefusal(layer: "datasource", reason: "the database could not be reached: \(PostgresErrors.summary(error))")
                }
            })
    }
}
