import Foundation

/// Parsed from `amqp://user:password@host:port/vhost` (`CHRONICLE_AMQP_URL`; `%2f` is `/`).
public struct AMQPSettings: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var username: String
    public var password: String
    public var virtualHost: String

    public init(url: String) throws {
        guard let components = URLComponents(string: url), components.scheme == "amqp",
            let host = components.host, !host.isEmpty
        else { throw ConfigurationError("CHRONICLE_AMQP_URL is not an amqp:// URL") }
        self.host = host
        self.port = components.port ?? 5672
        self.username = components.user ?? "guest"
        self.password = components.password ?? "guest"
        let path = String(components.percentEncodedPath.dropFirst())
        self.virtualHost = path.isEmpty ? "/" : (path.removingPercentEncoding ?? path)
    }
}
