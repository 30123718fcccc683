import Adapters
import Foundation
import Testing

@Suite struct RedisClientTests {
    static func client(poolSize: Int = 4) throws -> RedisClient {
        RedisClient(settings: try TestServers.redis(), poolSize: poolSize, logger: TestServers.logger)
    }

    static func key(_ name: String) -> String { "test:\(UUID().uuidString.prefix(8)):\(name)" }

    @Test func setThenGetRoundTripsUTF8AndBinarySafeValues() async throws {
        let redis = try Self.client()
        let key = Self.key("k")
        let value = "héllo wörld \u{1F600} with\nnewlines and a NUL-free payload"
        #expect(try await redis.command("SET", key, value) == .status("OK"))
        #expect(try await redis.command("GET", key) == .string(value))
        #expect(try await redis.command("GET", Self.key("missing")) == .null)
        _ = try await redis.command("DEL", key)
    }

    @Test func aPipelineSendsManyCommandsAndReturnsRepliesInOrder() async throws {
        let redis = try Self.client()
        let key = Self.key("counter")
        let replies = try await redis.pipeline((0..<100).map { _ in ["INCR", key] })
        #expect(replies.compactMap(\.integer) == Array(1...100))
        _ = try await redis.command("DEL", key)
    }

    @Test func anErrorReplyIsTypedAndLeavesTheConnectionUsable() async throws {
        let redis = try Self.client(poolSize: 1)
        let key = Self.key("list")
        _ = try await redis.command("SET", key, "not a list")
        await #expect(throws: RedisError.self) { try await redis.command("LPUSH", key, "x") }
        #expect(try await redis.command("GET", key) == .string("not a list"))
        _ = try await redis.command("DEL", key)
    }

    @Test func scriptsRunBySHAAndLoadThemselvesAfterAFlush() async throws {
        let redis = try Self.client(poolSize: 1)
        let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        let key = Self.key("script")
        #expect(try await redis.eval(script, keys: [key], args: ["5"]) == .integer(5))
        _ = try await redis.command("SCRIPT", "FLUSH")
        #expect(try await redis.eval(script, keys: [key], args: ["2"]) == .integer(7))
        #expect(try await redis.command("SCRIPT", "EXISTS", script.sha1) == .array([.integer(1)]))
        _ = try await redis.command("DEL", key)
    }

    @Test func manyConcurrentCallersShareASmallPool() async throws {
        let redis = try Self.client(poolSize: 3)
        let key = Self.key("shared")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<200 { group.addTask { _ = try await redis.command("INCR", key) } }
            try await group.waitForAll()
        }
        #expect(try await redis.command("GET", key) == .string("200"))
        _ = try await redis.command("DEL", key)
    }

    @Test func aConnectionKilledByTheServerIsReplaced() async throws {
        let redis = try Self.client(poolSize: 1)
        let key = Self.key("survivor")
        _ = try await redis.command("SET", key, "1")
        let id = try #require(try await redis.command("CLIENT", "ID").integer)
        // The server drops this client's pooled connection, as on a restart (only this one: other
        // tests share the server).
        let admin = try Self.client(poolSize: 1)
        #expect(try await admin.command("CLIENT", "KILL", "ID", String(id)) == .integer(1))
        var failures = 0
        var value: RedisValue?
        for _ in 0..<3 where value == nil {
            do { value = try await redis.command("GET", key) } catch let error as RedisError where error.code == .connection { failures += 1 }
        }
        #expect(value == .string("1"))
        #expect(failures <= 1, "more failures than broken pooled connections")
        #expect(try await redis.command("CLIENT", "ID").integer != id)
        _ = try await redis.command("DEL", key)
    }

    @Test func anUnreachableServerIsAConnectionError() async throws {
        var settings = try TestServers.redis()
        settings.port = try CLIProcess.freePort()
        let redis = RedisClient(settings: settings, poolSize: 1, timeout: .seconds(1), logger: TestServers.logger)
        await #expect(throws: RedisError(.connection, "")) {
            do { _ = try await redis.command("PING") } catch let error as RedisError { throw RedisError(error.code, "") }
        }
    }

    /// A call that gets no reply in time closes its connection: the late reply must not become
    /// the answer to the next call on the same connection.
    @Test func aCallThatTimesOutDoesNotShiftTheRepliesOfTheNextCalls() async throws {
        let redis = RedisClient(settings: try TestServers.redis(), poolSize: 1, timeout: .milliseconds(300), logger: TestServers.logger)
        let key = Self.key("late")
        _ = try await redis.command("SET", key, "mine")
        let id = try #require(try await redis.command("CLIENT", "ID").integer)
        // BLPOP on an empty list answers nil after one second: after the call has timed out.
        await #expect(throws: RedisError.self) { try await redis.command("BLPOP", Self.key("empty"), "1") }
        try await Task.sleep(for: .milliseconds(1_200))
        #expect(try await redis.command("GET", key) == .string("mine"))
        #expect(try await redis.command("CLIENT", "ID").integer != id, "the timed-out connection was reused")
        _ = try await redis.command("DEL", key)
    }

    /// Pipelined requests from many callers on one connection each get their own replies.
    @Test func concurrentPipelinesOnOneConnectionGetTheirOwnReplies() async throws {
        let redis = try Self.client(poolSize: 1)
        let prefix = Self.key("own")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for caller in 0..<50 {
                group.addTask {
                    let keys = (0..<5).map { "\(prefix):\(caller):\($0)" }
                    _ = try await redis.pipeline(keys.map { ["SET", $0, "\(caller)-\($0)"] })
                    let values = try await redis.pipeline(keys.map { ["GET", $0] })
                    #expect(values == keys.map { .string("\(caller)-\($0)") })
                    _ = try await redis.pipeline(keys.map { ["DEL", $0] })
                }
            }
            try await group.waitForAll()
        }
    }
}
