import Adapters
import Crypto
import Composition
import Events
import Foundation
import Logging
import PostgresNIO
import Synchronization
import Testing

/// The real servers `make test` starts. A test that needs one and finds no configuration fails
/// with a message saying how to start them; it never skips.
enum TestServers {
    struct NotConfigured: Error, CustomStringConvertible {
        let variable: String
        var description: String {
            "\(variable) is not set: run the tests with `make test` (or eval \"$(eventstore/dev/env.sh)\" after eventstore/dev/start.sh)"
        }
    }

    static func env(_ name: String) throws -> String {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { throw NotConfigured(variable: name) }
        return value
    }

    /// The test server. Connections get 30 s to open unless the URL says otherwise: at the start
    /// of a run every suite opens its own at once, on two cores shared with child processes, and
    /// a CI run once saw logins take over 5 s.
    static func postgres() throws -> PostgresSettings {
        let url = try env("CHRONICLE_POSTGRES_URL")
        var settings = try PostgresSettings(url: url, maxConnections: 40)
        if !url.contains("connect_timeout=") { settings.connectTimeout = .seconds(30) }
        return settings
    }

    static func redis() throws -> RedisSettings { try RedisSettings(url: try env("CHRONICLE_REDIS_URL")) }
    static func amqp() throws -> AMQPSettings { try AMQPSettings(url: try env("CHRONICLE_AMQP_URL")) }

    /// The platform the composition builds on, for `database`: runners, stores and work
    /// queues come from it, as in `chronicle serve`.
    static func platform(_ database: ChronicleDatabase) throws -> Platform {
        Platform(database: database, redis: RedisClient(settings: try redis(), logger: logger), amqp: try amqp(), logger: logger)
    }

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let migrationsDirectory = root.appendingPathComponent("eventstore/migrations")
    static func migrator() throws -> Migrator { try Migrator(directory: migrationsDirectory) }

    static var logger: Logger {
        var logger = Logger(label: "chronicle.tests")
        logger.logLevel = .critical
        return logger
    }

    /// A fresh database on the test server: created (a copy of the migrated template, or empty),
    /// dropped afterwards.
    static func withDatabase<T: Sendable>(
        migrated: Bool = true, listen: Bool = false, _ body: @Sendable (ChronicleDatabase) async throws -> T
    ) async throws -> T {
        let base = try postgres()
        let name = "chronicle_test_\(UUID().uuidString.prefix(8).lowercased())"
        if migrated {
            try await createMigrated(name)
        } else {
            try await Watchdog.step("creating database \(name)") {
                try await ChronicleDatabase.withRunning(base, logger: logger) { admin in try await admin.createDatabase(name) }
            }
        }
        do {
            let result = try await Watchdog.step("database \(name) open (its client stops after the body)") {
                try await ChronicleDatabase.withRunning(base.with(database: name), logger: logger, listen: listen) { database in
                    // A no-op on the template's copy, which has them all; it checks their checksums.
                    if migrated { _ = try await Watchdog.step("migrating \(name)") { try await database.migrate(try migrator()) } }
                    return try await Watchdog.step("the body, in database \(name)") { try await body(database) }
                }
            }
            try await drop(name)
            return result
        } catch {
            try? await drop(name)
            throw error
        }
    }

    /// Creates `name` as a copy of the migrated template: a file copy, where migrating each test's
    /// database took 2 to 5 s of the server's CPU, a hundred times at once at the start of a run.
    static func createMigrated(_ name: String) async throws {
        let template = try await migratedTemplate()
        try await Watchdog.step("creating database \(name) from \(template)") {
            try await ChronicleDatabase.withRunning(try postgres(), logger: logger) { admin in
                try await admin.execute("CREATE DATABASE \(name) TEMPLATE \(template)")
            }
        }
    }

    private static let template = Mutex<Task<String, any Error>?>(nil)

    /// The migrated template for the current migrations, built once per server and reused by
    /// every later run until a migration changes: its name carries a digest of them. Built under
    /// another name and renamed, so two processes that build it at once cannot see half of one;
    /// it refuses connections, so nothing can hold it open while a test copies it.
    static func migratedTemplate() async throws -> String {
        let task = template.withLock { current in
            if let current { return current }
            let task = Task { try await buildTemplate() }
            current = task
            return task
        }
        do {
            return try await task.value
        } catch {
            template.withLock { $0 = nil }
            throw error
        }
    }

    private static func buildTemplate() async throws -> String {
        let migrator = try migrator()
        let digest = SHA256.hash(data: Data(migrator.migrations.map { "\($0.version):\($0.checksum)\n" }.joined().utf8))
        let name = "chronicle_template_" + digest.prefix(6).map { String(format: "%02x", $0) }.joined()
        let base = try postgres()
        return try await Watchdog.step("building the migrated template \(name)") {
            let exists = try await ChronicleDatabase.withRunning(base, logger: logger) { admin in
                try await admin.client.query("SELECT 1 FROM pg_database WHERE datname = \(name)", logger: logger).decode(Int.self).all().count == 1
            }
            if exists { return name }
            let building = "chronicle_building_\(UUID().uuidString.prefix(8).lowercased())"
            try await ChronicleDatabase.withRunning(base, logger: logger) { admin in try await admin.createDatabase(building) }
            try await ChronicleDatabase.withRunning(base.with(database: building), logger: logger) { database in
                _ = try await database.migrate(migrator)
            }
            try await ChronicleDatabase.withRunning(base, logger: logger) { admin in
                // The builder's last connections may take a moment to close.
                for attempt in 1...100 {
                    do {
                        try await admin.execute("ALTER DATABASE \(building) RENAME TO \(name)")
                        break
                    } catch let error as PSQLError where error.serverInfo?[.sqlState] == "42P04" {
                        // Another process built it first.
                        try await admin.dropDatabase(building)
                        return
                    } catch where attempt < 100 {
                        try await Task.sleep(for: .milliseconds(100))
                    }
                }
                try await admin.execute("ALTER DATABASE \(name) WITH IS_TEMPLATE true ALLOW_CONNECTIONS false")
                // Templates of older migrations, from earlier runs on this server.
                let stale = try await admin.client.query(
                    "SELECT datname FROM pg_database WHERE datname LIKE 'chronicle\\_template\\_%' AND datname <> \(name)", logger: logger
                ).decode(String.self).all()
                for old in stale {
                    try? await admin.execute("ALTER DATABASE \(old) WITH IS_TEMPLATE false")
                    try? await admin.dropDatabase(old)
                }
            }
            return name
        }
    }

    private static func drop(_ name: String) async throws {
        try await Watchdog.step("dropping database \(name)") {
            try await ChronicleDatabase.withRunning(try postgres(), logger: logger) { admin in try await admin.dropDatabase(name) }
        }
    }
}

extension TestServers {
    /// The newest committed event, ignoring the xmin horizon. The cast has its own name and the
    /// sort names the table's column: sorted as text, xid 999 would come after 1000 (the readAll
    /// bug, which these helpers once repeated; CI on a fresh cluster caught it).
    static func newestCommitted(_ database: ChronicleDatabase) async throws -> Checkpoint {
        let rows = try await database.client.query("""
            SELECT transaction_id::text AS transaction_text, global_position FROM events
            ORDER BY events.transaction_id DESC, events.global_position DESC LIMIT 1
            """, logger: logger).decode((String, Int64).self).all()
        return rows.first.map { Checkpoint(transactionID: UInt64($0.0)!, position: $0.1) } ?? .start
    }
}

extension AsyncSequence {
    /// Every element, in order.
    func all() async throws -> [Element] {
        var elements: [Element] = []
        for try await element in self { elements.append(element) }
        return elements
    }
}
