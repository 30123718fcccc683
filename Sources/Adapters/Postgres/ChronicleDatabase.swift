import Commands
import Events
import Foundation
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle

/// Chronicle's Postgres: the connection pool and everything built on it (event store, snapshots,
/// the NOTIFY listener, migrations). The rest of the program uses this and never PostgresNIO.
public final class ChronicleDatabase: Sendable {
    public let settings: PostgresSettings
    public let client: PostgresClient
    public let signal: AppendSignal
    public let eventStore: PostgresEventStore
    public let snapshots: PostgresSnapshotStore
    let logger: Logger

    public init(settings: PostgresSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
        self.client = PostgresClient(configuration: settings.clientConfiguration, backgroundLogger: logger)
        self.signal = AppendSignal()
        self.eventStore = PostgresEventStore(client: client, logger: logger, signal: signal)
        self.snapshots = PostgresSnapshotStore(client: client, logger: logger)
    }

    /// The pool, and the listener that wakes local readers on NOTIFY: run them in a ServiceGroup.
    public var services: [any Service] {
        [client, PostgresAppendListener(client: client, signal: signal, logger: logger)]
    }

    /// Runs `body` with the pool running beside it (for CLI commands outside a ServiceGroup).
    /// Checks first that the server answers, so an unreachable database is one clear error rather
    /// than a pool that waits.
    public static func withRunning<T: Sendable>(
        _ settings: PostgresSettings, logger: Logger, listen: Bool = false,
        _ body: @Sendable (ChronicleDatabase) async throws -> T
    ) async throws -> T {
        try await preflight(settings, logger: logger)
        let database = ChronicleDatabase(settings: settings, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await database.client.run() }
            if listen {
                group.addTask { try await PostgresAppendListener(client: database.client, signal: database.signal, logger: logger).run() }
            }
            defer { group.cancelAll() }
            return try await body(database)
        }
    }

    /// Opens and closes one connection within `timeout` (the settings' connect timeout if nil).
    public static func preflight(_ settings: PostgresSettings, logger: Logger, timeout: Duration? = nil) async throws {
        let timeout = timeout ?? settings.connectTimeout
        var config = PostgresConnection.Configuration(
            host: settings.host, port: settings.port, username: settings.username, password: settings.password,
            database: settings.database, tls: .disable)
        config.options.connectTimeout = TimeAmount.nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000)
        do {
            let connection = try await PostgresConnection.connect(configuration: config, id: 0, logger: logger)
            try await connection.close()
        } catch {
            throw DatabaseUnreachable(target: settings.redacted, reason: Self.reason(error))
        }
    }

    public func ping() async throws {
        _ = try await client.query("SELECT 1", logger: logger).collect()
    }

    /// Applies pending migrations; returns the versions applied.
    @discardableResult
    public func migrate(_ migrator: Migrator) async throws -> [Int] {
        try await migrator.migrate(client: client, logger: logger)
    }

    /// Migrations in `migrator` not yet applied here (all of them if the table is missing).
    public func pendingMigrations(_ migrator: Migrator) async throws -> [Int] {
        var exists = false
        for try await found in try await client.query(
            "SELECT to_regclass('schema_migrations') IS NOT NULL", logger: logger
        ).decode(Bool.self) {
            exists = found
        }
        guard exists else { return migrator.migrations.map(\.version) }
        var applied = Set<Int>()
        for try await version in try await client.query("SELECT version FROM schema_migrations", logger: logger).decode(Int.self) {
            applied.insert(version)
        }
        return migrator.migrations.map(\.version).filter { !applied.contains($0) }
    }

    /// The server's durability settings, for benchmark reports.
    public func durabilitySettings() async throws -> [String: String] {
        var result: [String: String] = [:]
        for name in ["fsync", "synchronous_commit", "full_page_writes"] {
            for try await value in try await client.query("SELECT current_setting(\(name))", logger: logger).decode(String.self) {
                result[name] = value
            }
        }
        return result
    }

    /// Creates a throwaway database on the same server (tests, benchmark). Names are checked: only
    /// `[a-z0-9_]`.
    public func createDatabase(_ name: String) async throws {
        try Self.checkName(name)
        _ = try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger).collect()
    }

    public func dropDatabase(_ name: String) async throws {
        try Self.checkName(name)
        _ = try await client.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)"), logger: logger).collect()
    }

    /// Runs raw SQL, for tests and operators' tools only.
    public func execute(_ sql: String) async throws {
        for statement in SQLScript.statements(sql) {
            _ = try await client.query(PostgresQuery(unsafeSQL: statement), logger: logger).collect()
        }
    }

    private static func checkName(_ name: String) throws {
        guard !name.isEmpty, name.allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "_" }), name.first!.isLetter else {
            throw ConfigurationError("database names are [a-z][a-z0-9_]*")
        }
    }

    /// A short, readable cause: the server's message, or what the network said.
    static func reason(_ error: any Error) -> String {
        if let psql = error as? PSQLError, let message = psql.serverInfo?[.message] { return message }
        let text = String(describing: (error as? PSQLError)?.underlying ?? error)
        let known = [
            ("Connection refused", "connection refused (is the server running? try 'make run' or eventstore/dev/start.sh)"),
            ("timed out", "connection timed out"), ("timeout", "connection timed out"),
            ("No such host", "host not found"), ("Name or service not known", "host not found"),
            ("authentication", "authentication failed"),
        ]
        for (needle, reason) in known where text.localizedCaseInsensitiveContains(needle) { return reason }
        return "the server did not answer"
    }
}

/// The database did not answer. The message names the target without its password.
public struct DatabaseUnreachable: Error, CustomStringConvertible, Sendable {
    public let target: String
    public let reason: String
    public var description: String { "cannot connect to Postgres at \(target): \(reason)" }
}

extension ChronicleDatabase {
    /// One plain INSERT of a JSON document: the benchmark's ceiling beside the event store's append.
    public func rawInsert(table: String, json: Data) async throws {
        let text = String(decoding: json, as: UTF8.self)
        _ = try await client.query(PostgresQuery(unsafeSQL: "INSERT INTO \(table) (data) VALUES ($1::jsonb)", binds: {
            var binds = PostgresBindings()
            binds.append(text)
            return binds
        }()), logger: logger).collect()
    }
}

extension ChronicleDatabase {
    /// How many events lie after `checkpoint` (counted up to `cap`): a projector's lag.
    public func eventsAfter(_ checkpoint: Checkpoint, cap: Int = 1_000_000) async throws -> Int {
        try await PostgresEventStore.count(after: checkpoint, cap: cap, client: client, logger: logger)
    }

    /// What `projector_checkpoints` says of every projector that ever held a lease: its epoch,
    /// generation, last update, and checkpoint (Redis projectors keep theirs in Redis instead).
    public func projectorStates() async throws -> [String: ProjectorState] {
        var states: [String: ProjectorState] = [:]
        let rows = try await client.query(
            "SELECT projector, epoch, generation, updated_at, transaction_id::text AS transaction_text, position FROM projector_checkpoints",
            logger: logger)
        for try await (name, epoch, generation, updated, tx, position) in rows.decode((String, Int64, Int32, Date, String, Int64).self) {
            states[name] = ProjectorState(
                epoch: epoch, generation: Int(generation), updatedAt: updated,
                checkpoint: Checkpoint(transactionID: UInt64(tx) ?? 0, position: position))
        }
        return states
    }
}

public struct ProjectorState: Sendable {
    public var epoch: Int64
    public var generation: Int
    public var updatedAt: Date
    public var checkpoint: Checkpoint
}

extension ChronicleDatabase {
    public func countEvents() async throws -> Int {
        for try await count in try await client.query("SELECT count(*) FROM events", logger: logger).decode(Int64.self) {
            return Int(count)
        }
        return 0
    }
}
