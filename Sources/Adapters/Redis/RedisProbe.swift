import Foundation

/// One PING over a fresh connection: what `/health` reports for Redis.
public enum RedisProbe {
    public static func ping(_ settings: RedisSettings, timeout: Duration = .seconds(2)) async throws {
        try await BlockingIO.run {
            let reply = try RedisConnection(settings, timeout: timeout).command(["PING"])
            guard reply.string == "PONG" else { throw RedisError(.server, "unexpected PING reply") }
        }
    }
}
