import Adapters
import ArgumentParser
import Composition
import Foundation
import Logging

/// Connection settings every command shares. Defaults come from the environment that
/// `eventstore/dev/env.sh` prints.
public struct ConnectionOptions: ParsableArguments, Sendable {
    @Option(name: .customLong("database-url"), help: "Postgres URL (default: $CHRONICLE_POSTGRES_URL)")
    public var databaseURL: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical")
    public var logLevel: String?

    public init() {}

    public func postgres() throws -> PostgresSettings {
        guard let url = databaseURL ?? Settings().text("chronicle.postgres.url", secret: true) else {
            throw ValidationError("no database: pass --database-url or set CHRONICLE_POSTGRES_URL (eval \"$(eventstore/dev/env.sh)\")")
        }
        return try PostgresSettings(url: url)
    }

    /// Bootstraps logging once, to stderr, at the chosen level (`CHRONICLE_LOG_LEVEL` otherwise).
    public func logger(_ label: String, default level: Logger.Level) throws -> Logger {
        let name = logLevel ?? Settings().text("chronicle.log_level")
        var chosen = level
        if let name {
            guard let parsed = Logger.Level(rawValue: name.lowercased()) else {
                throw ValidationError("unknown log level '\(name)'")
            }
            chosen = parsed
        }
        LoggingBootstrap.once(level: chosen)
        var logger = Logger(label: label)
        logger.logLevel = chosen
        return logger
    }
}

public enum LoggingBootstrap {
    private static let done = LockedFlag()

    public static func once(level: Logger.Level) {
        guard done.set() else { return }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    /// Sets the flag; true if it was not set before.
    func set() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        defer { value = true }
        return !value
    }
}

/// Finds the migrations folder or says how to point at it.
public func locateMigrator(_ explicit: String?) throws -> Migrator {
    let named = explicit ?? Settings().text("chronicle.migrations_dir")
    guard let url = named.map({ URL(fileURLWithPath: $0) }) ?? Migrator.locateDirectory(environment: [:]) else {
        throw ValidationError("eventstore/migrations not found: run from the checkout or pass --migrations-dir")
    }
    return try Migrator(directory: url)
}

/// A command's own failure (not a usage error): one line, exit 1.
public struct CLIError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
