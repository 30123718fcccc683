import Crypto
import Foundation
import Logging
import Synchronization

/// A Lua script, called by its SHA-1 (`EVALSHA`) and loaded on the first `NOSCRIPT`.
public struct RedisScript: Sendable {
    public let source: String
    public let sha1: String

    public init(_ source: String) {
        self.source = source
        self.sha1 = Insecure.SHA1.hash(data: Data(source.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}

/// Redis over hiredis: a small pool of blocking connections used from the blocking-I/O thread
/// pool, never from an event loop. A connection that saw an I/O error is dropped, so the next call
/// reconnects: a Redis restart costs the calls in flight, not the client.
public final class RedisClient: Sendable {
    public let settings: RedisSettings
    let poolSize: Int
    let timeout: Duration
    let logger: Logger

    private struct Pool {
        var idle: [RedisConnection] = []
        var open = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let pool = Mutex(Pool())

    public init(settings: RedisSettings, poolSize: Int = 8, timeout: Duration = .seconds(2), logger: Logger) {
        self.settings = settings
        self.poolSize = max(1, poolSize)
        self.timeout = timeout
        self.logger = logger
    }

    public func command(_ args: String...) async throws -> RedisValue {
        try await command(args)
    }

    public func command(_ args: [String]) async throws -> RedisValue {
        try await withConnection { try $0.command(args) }
    }

    /// Sends all commands in one round trip; replies in order.
    public func pipeline(_ commands: [[String]]) async throws -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        return try await withConnection { try $0.pipeline(commands) }
    }

    /// Runs a script by SHA-1, loading it first if this server does not know it yet.
    public func eval(_ script: RedisScript, keys: [String], args: [String]) async throws -> RedisValue {
        let tail = [String(keys.count)] + keys + args
        return try await withConnection { connection in
            do {
                return try connection.command(["EVALSHA", script.sha1] + tail)
            } catch let error as RedisError where error.code == .noScript {
                return try connection.command(["EVAL", script.source] + tail)
            }
        }
    }

    private func withConnection<T: Sendable>(_ body: @escaping @Sendable (RedisConnection) throws -> T) async throws -> T {
        let connection = try await checkOut()
        do {
            let result = try await BlockingIO.run { try body(connection) }
            checkIn(connection)
            return result
        } catch {
            checkIn(connection)
            throw error
        }
    }

    private func checkOut() async throws -> RedisConnection {
        while true {
            enum Next { case reuse(RedisConnection), create, wait }
            let next: Next = pool.withLock { pool in
                if let connection = pool.idle.popLast() { return .reuse(connection) }
                if pool.open < poolSize {
                    pool.open += 1
                    return .create
                }
                return .wait
            }
            switch next {
            case .reuse(let connection):
                return connection
            case .create:
                do {
                    let settings = settings, timeout = timeout
                    return try await BlockingIO.run { try RedisConnection(settings, timeout: timeout) }
                } catch {
                    release(slot: true)
                    throw error
                }
            case .wait:
                await withCheckedContinuation { continuation in
                    let resumeNow = pool.withLock { pool -> Bool in
                        if !pool.idle.isEmpty || pool.open < poolSize { return true }
                        pool.waiters.append(continuation)
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
        }
    }

    /// Returns a usable connection to the pool, or frees its slot if it broke.
    private func checkIn(_ connection: RedisConnection) {
        if connection.isUsable {
            let waiter = pool.withLock { pool -> CheckedContinuation<Void, Never>? in
                pool.idle.append(connection)
                return pool.waiters.isEmpty ? nil : pool.waiters.removeFirst()
            }
            waiter?.resume()
        } else {
            logger.warning("redis connection broken; it will be replaced")
            release(slot: true)
        }
    }

    private func release(slot: Bool) {
        let waiter = pool.withLock { pool -> CheckedContinuation<Void, Never>? in
            if slot { pool.open -= 1 }
            return pool.waiters.isEmpty ? nil : pool.waiters.removeFirst()
        }
        waiter?.resume()
    }
}
