import Crypto
import Foundation
import Logging
import PostgresNIO

/// Applies `eventstore/migrations/NNNN_name.sql` in order, each in its own transaction, recording
/// each in `schema_migrations`. Forward-only: an applied file whose checksum changed is an error.
/// Safe to run twice and from two processes at once: an advisory lock serialises them.
public struct Migrator: Sendable {
    public struct Migration: Sendable, Equatable {
        public let version: Int
        public let name: String
        public let sql: String
        public var checksum: String {
            SHA256.hash(data: Data(sql.utf8)).map { String(format: "%02x", $0) }.joined()
        }
    }

    public enum MigrationError: Error, CustomStringConvertible, Equatable {
        case directoryNotFound(String)
        case badFileName(String)
        case duplicateVersion(Int)
        case changedAfterApply(version: Int, name: String)
        case failed(version: Int, name: String, reason: String)

        public var description: String {
            switch self {
            case .directoryNotFound(let path): "migrations folder not found: \(path)"
            case .badFileName(let name): "migration file name must be NNNN_name.sql: \(name)"
            case .duplicateVersion(let version): "two migrations have version \(version)"
            case .changedAfterApply(let version, let name):
                "migration \(version) (\(name)) was changed after it was applied; add a new migration instead"
            case .failed(let version, let name, let reason): "migration \(version) (\(name)) failed: \(reason)"
            }
        }
    }

    /// The lock key: any fixed bigint shared by every Chronicle process.
    static let lockKey: Int64 = 0x4368_726F_6E69_636C  // "Chronicl"

    public let migrations: [Migration]

    public init(migrations: [Migration]) {
        self.migrations = migrations.sorted { $0.version < $1.version }
    }

    public init(directory: URL) throws {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: directory.path) else {
            throw MigrationError.directoryNotFound(directory.path)
        }
        var seen = Set<Int>()
        var found: [Migration] = []
        for name in names.sorted() where name.hasSuffix(".sql") {
            guard let underscore = name.firstIndex(of: "_"), let version = Int(name[..<underscore]) else {
                throw MigrationError.badFileName(name)
            }
            guard seen.insert(version).inserted else { throw MigrationError.duplicateVersion(version) }
            let sql = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
            found.append(Migration(version: version, name: String(name.dropLast(4)), sql: sql))
        }
        self.init(migrations: found)
    }

    /// Finds `eventstore/migrations`: `CHRONICLE_MIGRATIONS_DIR`, else the working directory or
    /// any parent of the executable (a build folder sits inside the checkout).
    public static func locateDirectory(
        environment: [String: String] = ProcessInfo.processInfo.environment, startingAt extra: [URL] = []
    ) -> URL? {
        if let explicit = environment["CHRONICLE_MIGRATIONS_DIR"] { return URL(fileURLWithPath: explicit) }
        let starts = extra + [
            URL(fileURLWithPath: FileManager.default.currentDirectoryPath),
            URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().deletingLastPathComponent(),
        ]
        for start in starts {
            var dir = start.standardizedFileURL
            for _ in 0..<8 {
                let candidate = dir.appendingPathComponent("eventstore/migrations")
                if FileManager.default.fileExists(atPath: candidate.path) { return candidate }
                dir.deleteLastPathComponent()
            }
        }
        return nil
    }

    /// Applies what is pending; returns the versions it applied.
    @discardableResult
    public func migrate(client: PostgresClient, logger: Logger) async throws -> [Int] {
        try await client.withConnection { connection in
            _ = try await connection.query("SELECT pg_advisory_lock(\(Self.lockKey))", logger: logger)
            do {
                let applied = try await apply(on: connection, logger: logger)
                _ = try await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
                return applied
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
                throw error
            }
        }
    }

    private func apply(on connection: PostgresConnection, logger: Logger) async throws -> [Int] {
        _ = try await connection.query(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())
            """, logger: logger)
        var done: [Int: String] = [:]
        for try await (version, checksum) in try await connection.query(
            "SELECT version, checksum FROM schema_migrations", logger: logger
        ).decode((Int, String).self) {
            done[version] = checksum
        }
        var applied: [Int] = []
        for migration in migrations {
            if let checksum = done[migration.version] {
                guard checksum == migration.checksum else {
                    throw MigrationError.changedAfterApply(version: migration.version, name: migration.name)
                }
                continue
            }
            logger.info("applying migration", metadata: ["migration": "\(migration.name)"])
            do {
                _ = try await connection.query("BEGIN", logger: logger)
                for statement in SQLScript.statements(migration.sql) {
                    _ = try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                _ = try await connection.query(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (\(migration.version), \(migration.name), \(migration.checksum))",
                    logger: logger)
                _ = try await connection.query("COMMIT", logger: logger)
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw MigrationError.failed(
                    version: migration.version, name: migration.name, reason: PostgresErrors.summary(error))
            }
            applied.append(migration.version)
        }
        return applied
    }
}
