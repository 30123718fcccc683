import Commands
import Foundation

/// Presence in Redis: one hash per key, each member's value prefixed with its expiry (epoch
/// milliseconds), since a hash field has no TTL of its own on every Redis this runs on. Readers
/// drop and delete expired members; the hash itself expires with its last member's TTL.
public struct RedisPresenceStore: PresenceStore {
    let redis: RedisClient
    let namespace: String

    public init(redis: RedisClient, namespace: String) {
        self.redis = redis
        self.namespace = namespace
    }

    func key(_ key: String) -> String { "\(namespace):presence:\(key)" }

    static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    public func put(_ key: String, member: String, value: String, ttl: Duration) async throws {
        let ttlMS = Self.milliseconds(ttl)
        let expires = Int64(Date().timeIntervalSince1970 * 1000) + ttlMS
        _ = try await redis.pipeline([["HSET", self.key(key), member, "\(expires)|\(value)"], ["PEXPIRE", self.key(key), "\(ttlMS)"]])
    }

    public func remove(_ key: String, member: String) async throws {
        _ = try await redis.command("HDEL", self.key(key), member)
    }

    public func entries(_ key: String) async throws -> [String: String] {
        guard case .array(let flat) = try await redis.command("HGETALL", self.key(key)) else { return [:] }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var live: [String: String] = [:]
        var expired: [String] = []
        var index = 0
        while index + 1 < flat.count {
            defer { index += 2 }
            guard case .string(let member) = flat[index], case .string(let stored) = flat[index + 1] else { continue }
            let parts = stored.split(separator: "|", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let expires = Int64(parts[0]), expires > now else {
                expired.append(member)
                continue
            }
            live[member] = String(parts[1])
        }
        if !expired.isEmpty { _ = try? await redis.command(["HDEL", self.key(key)] + expired) }
        return live
    }
}
