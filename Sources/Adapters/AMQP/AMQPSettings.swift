import Foundation

/// Parsed from `amqp://user:password@host:port/vhost[?heartbeat=S]` (`CHRONICLE_AMQP_URL`; `%2f`
/// is `/`). `heartbeat` is the consumers' heartbeat timeout in seconds, 30 by default, 0 for none;
/// publishers never ask for heartbeats (see `AMQPPublisher`).
public struct AMQPSettings: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var username: String
    public var password: String
    public var virtualHost: String
    public var heartbeatSeconds: Int32 = 30

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
        if let heartbeat = components.queryItems?.first(where: { $0.name == "heartbeat" })?.value {
            guard let seconds = Int32(heartbeat), (0...3600).contains(seconds) else {
                throw ConfigurationError("CHRONICLE_AMQP_URL: heartbeat must be 0 to 3600 seconds")
            }
            heartbeatSeconds = seconds
        }
    }
}
