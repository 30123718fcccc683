import Commands
import Foundation
import Logging

/// Sliding-window rate limits in Redis, one Lua script per check: for each limit a sorted set of
/// the window's request times (Redis's own clock, so every process agrees); the request is
/// admitted only if every limit has room, and then recorded in all of them. Exact at window
/// edges, unlike fixed windows, which admit twice the limit across a boundary.
public struct RedisRateLimiter: RateLimiter {
    let redis: RedisClient
    let prefix: String

    public init(redis: RedisClient, keyspace: String) {
        self.redis = redis
        prefix = "\(keyspace):ratelimit:"
    }

    static let script = RedisScript("""
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local member = ARGV[1]
        local allowed = 1
        local retry = 0
        local out = {}
        for i, key in ipairs(KEYS) do
          local limit = tonumber(ARGV[2 * i])
          local window = tonumber(ARGV[2 * i + 1])
          redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
          local count = redis.call('ZCARD', key)
          local reset = window
          local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
          if oldest[2] then reset = tonumber(oldest[2]) + window - now end
          if count >= limit then
            allowed = 0
            local nth = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
            local free = tonumber(nth[2]) + window - now
            if free > retry then retry = free end
          end
          out[#out + 1] = count
          out[#out + 1] = reset
        end
        if allowed == 1 then
          for i, key in ipairs(KEYS) do
            redis.call('ZADD', key, now, member)
            redis.call('PEXPIRE', key, tonumber(ARGV[2 * i + 1]))
          end
        end
        table.insert(out, 1, retry)
        table.insert(out, 1, allowed)
        return out
        """)

    public func check(_ limits: [RateLimit]) async throws -> RateDecision {
        guard !limits.isEmpty else { return RateDecision(allowed: true, limit: 0, remaining: 0, resetSeconds: 0, retryAfterSeconds: 0) }
        var args = [UUID.random().uuidString]
        for limit in limits { args += [String(limit.limit), String(Self.milliseconds(limit.window))] }
        let reply = try await redis.eval(Self.script, keys: limits.map { prefix + $0.key }, args: args)
        guard let values = reply.array?.compactMap(\.integer), values.count == 2 + 2 * limits.count else {
            throw RedisError(.server, "unexpected rate limit reply")
        }
        let allowed = values[0] == 1
        // Report the limit with the fewest requests left.
        var tightest = (limit: 0, remaining: Int.max, reset: 0)
        for (index, limit) in limits.enumerated() {
            let count = Int(values[2 + 2 * index])
            let remaining = max(0, limit.limit - count - (allowed ? 1 : 0))
            if remaining < tightest.remaining {
                tightest = (limit.limit, remaining, Int((Double(values[3 + 2 * index]) / 1000).rounded(.up)))
            }
        }
        return RateDecision(
            allowed: allowed, limit: tightest.limit, remaining: tightest.remaining, resetSeconds: max(0, tightest.reset),
            retryAfterSeconds: allowed ? 0 : max(1, Int((Double(values[1]) / 1000).rounded(.up))))
    }

    /// For `/health`: whether the limiter can decide (Redis answers).
    public func ping() async throws {
        _ = try await redis.command("PING")
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }
}
