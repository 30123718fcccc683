import Foundation

/// Parsed from `redis://[:password@]host:port/db` (`CHRONICLE_REDIS_URL`).
public struct RedisSettings: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var password: String?
    public var database: Int

    public init(url: String) throws {
        guard let components = URLComponents(string: url), components.scheme == "redis",
            let host = components.host, !host.isEmpty
        else { throw ConfigurationError("CHRONICLE_REDIS_URL is not a redis:// URL") }
        self.host = host
        self.port = components.port ?? 6379
        self.password = components.password
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        guard let database = path.isEmpty ? 0 : Int(path) else {
            throw ConfigurationError("CHRONICLE_REDIS_URL's path must be a database number")
        }
        self.database = database
    }
}
