import Adapters
import Composition
import Events
import Foundation
import Logging
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

    static func postgres() throws -> PostgresSettings {
        try PostgresSettings(url: try env("CHRONICLE_POSTGRES_URL"), maxConnections: 40)
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

    /// A fresh database on the test server: created, optionally migrated, dropped afterwards.
    static func withDatabase<T: Sendable>(
        migrated: Bool = true, listen: Bool = false, _ body: @Sendable (ChronicleDatabase) async throws -> T
    ) async throws -> T {
        let base = try postgres()
        let name = "chronicle_test_\(UUID().uuidString.prefix(8).lowercased())"
        try await Watchdog.step("creating database \(name)") {
            try await ChronicleDatabase.withRunning(base, logger: logger) { admin in try await admin.createDatabase(name) }
        }
        do {
            let result = try await Watchdog.step("database \(name) open (its client stops after the body)") {
                try await ChronicleDatabase.withRunning(base.with(database: name), logger: logger, listen: listen) { database in
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
