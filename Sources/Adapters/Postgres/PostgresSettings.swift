import Foundation
import PostgresNIO

/// Connection settings parsed from a `postgres://user:password@host:port/database` URL
/// (`CHRONICLE_POSTGRES_URL`). Two parameters are read from the query, as libpq reads them:
/// `sslmode=disable|prefer|require` and `connect_timeout` (seconds to open a connection, its
/// startup and login included; 10 by default).
public struct PostgresSettings: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var tls: TLSMode
    public var maxConnections: Int
    /// How long opening one connection may take, login included.
    public var connectTimeout: Duration

    public enum TLSMode: String, Sendable { case disable, prefer, require }

    public init(url: String, maxConnections: Int = 20) throws {
        guard let components = URLComponents(string: url),
            ["postgres", "postgresql"].contains(components.scheme ?? ""),
            let host = components.host, !host.isEmpty
        else { throw ConfigurationError("CHRONICLE_POSTGRES_URL is not a postgres:// URL") }
        self.host = host
        self.port = components.port ?? 5432
        self.username = components.user ?? "postgres"
        self.password = components.password
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        self.database = path.isEmpty ? username : path
        let mode = components.queryItems?.first { $0.name == "sslmode" }?.value ?? "disable"
        guard let tls = TLSMode(rawValue: mode) else {
            throw ConfigurationError("sslmode must be disable, prefer or require")
        }
        self.tls = tls
        self.maxConnections = maxConnections
        if let text = components.queryItems?.first(where: { $0.name == "connect_timeout" })?.value {
            guard let seconds = Int(text), seconds > 0, seconds <= 3600 else {
                throw ConfigurationError("connect_timeout must be a whole number of seconds, 1 to 3600")
            }
            self.connectTimeout = .seconds(seconds)
        } else {
            self.connectTimeout = .seconds(10)
        }
    }

    /// The same server, another database: for tests that each create their own.
    /// The same server and database, as another login.
    public func with(username: String, password: String?) -> PostgresSettings {
        var copy = self
        copy.username = username
        copy.password = password
        return copy
    }

    public func with(database: String) -> PostgresSettings {
        var copy = self
        copy.database = database
        return copy
    }

    public var clientConfiguration: PostgresClient.Configuration {
        let tlsConfig: PostgresClient.Configuration.TLS =
            switch tls {
            case .disable: .disable
            case .prefer: .prefer(.makeClientConfiguration())
            case .require: .require(.makeClientConfiguration())
            }
        var config = PostgresClient.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: tlsConfig)
        config.options.maximumConnections = maxConnections
        config.options.connectTimeout = connectTimeout
        // Names the process in pg_stat_activity, e.g. to see which one holds a lease.
        config.options.additionalStartupParameters = [("application_name", "chronicle-\(ProcessInfo.processInfo.processIdentifier)")]
        return config
    }

    /// The URL without its password, for logs and errors.
    public var redacted: String { "postgres://\(username)@\(host):\(port)/\(database)" }
}

/// A setting is missing or malformed. The message names the setting and never echoes a secret.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
