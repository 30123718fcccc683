import Adapters
import Commands
import Events
import Foundation
import Projections
import Workers
import Testing

@Suite(.serialized) struct RedisOutageTests {
    /// The agent summary read model on a private Redis.
    static func summary(on server: PrivateServer, for database: ChronicleDatabase) throws -> (RedisClient, RedisProjectionStore<AgentSummaryProjection>) {
        let redis = RedisClient(settings: try RedisSettings(url: server.redisURL), poolSize: 2, timeout: .seconds(1), logger: TestServers.logger)
        let store = RedisProjectionStore(
            projection: AgentSummaryProjection(), redis: redis,
            parking: PostgresParkedEventStore(client: database.client, logger: TestServers.logger),
            keyspace: database.settings.database, logger: TestServers.logger)
        return (redis, store)
    }

    /// Runs `body` with the agent summary projector working against a Redis of the test's own.
    static func withSummaryOnPrivateRedis(
        _ body: @Sendable (PrivateServer, ChronicleDatabase, RedisClient, RedisProjectionStore<AgentSummaryProjection>) async throws -> Void
    ) async throws {
        try await PrivateServer.with("redis") { server in
            try await TestServers.withDatabase(listen: true) { database in
                let (redis, store) = try summary(on: server, for: database)
                let runner = Task { try await ProjectorTests.runner(store, database).run() }
                defer { runner.cancel() }
                try await body(server, database, redis, store)
            }
        }
    }

    /// Waits (up to 60 s) until the Redis model has passed the newest committed event.
    static func waitForCatchUp(_ store: RedisProjectionStore<AgentSummaryProjection>, _ database: ChronicleDatabase) async throws {
        let target = try await TestServers.newestCommitted(database)
        let deadline = ContinuousClock.now.advanced(by: .seconds(60))
        while (try? await store.checkpoint()) ?? .start < target, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try await store.checkpoint() >= target, "the Redis read model never caught up")
    }

    /// Every agent's Redis hash holds its name, status and last version, as the log says.
    static func expectRedisEqualsTheLog(_ database: ChronicleDatabase, _ store: RedisProjectionStore<AgentSummaryProjection>, _ redis: RedisClient) async throws {
        let agents = try await database.client.query("""
            SELECT c.data->>'agent_id', c.data->>'name',
                   CASE WHEN EXISTS (SELECT 1 FROM events d WHERE d.stream_id = c.stream_id AND d.event_type = 'AgentDeleted') THEN 'deleted' ELSE 'active' END,
                   (SELECT max(stream_version) FROM events v WHERE v.stream_id = c.stream_id)
            FROM events c WHERE c.event_type = 'AgentCreated'
            """, logger: TestServers.logger).decode((String, String, String, Int64).self).all()
        #expect(agents.count > 0)
        for (id, name, status, version) in agents {
            let key = store.prefix + "agent:" + id.lowercased()
            let fields = try await redis.pipeline([["HGET", key, "name"], ["HGET", key, "status"], ["HGET", key, "version"]])
            #expect(fields == [.string(name), .string(status), .string(String(version))], "\(key) differs from the log")
        }
    }

    @Test func aRedisThatRestartsEmptyMidStreamIsRebuiltAndEqualsTheLog() async throws {
        try await Self.withSummaryOnPrivateRedis { server, database, redis, store in
            let writer = FailoverTests.Writer(minimum: 60)
            let writing = Task { try await writer.run(database) }

            try await Task.sleep(for: .seconds(1))
            try await server.stop()  // no persistence: it comes back empty
            try await Task.sleep(for: .milliseconds(500))
            try await server.start()
            try await Task.sleep(for: .seconds(1))
            writer.stop.withLock { $0 = true }
            try await writing.value

            try await Self.waitForCatchUp(store, database)
            try await Self.expectRedisEqualsTheLog(database, store, redis)
            print("redis outage: \(writer.count.withLock { $0 }) commands, model equals the log")
        }
    }

    /// Regression for a silent loss: Redis loses its data while the connection stays up (a
    /// failover to an empty replica; FLUSHALL here) and the runner is idle. Without the
    /// compare-and-set on the checkpoint, new events were applied onto the empty Redis and every
    /// earlier agent was missing.
    @Test func aRedisThatLosesItsDataWhileIdleIsRebuiltAndEqualsTheLog() async throws {
        try await Self.withSummaryOnPrivateRedis { server, database, redis, store in
            let before = FailoverTests.Writer(minimum: 30)
            before.stop.withLock { $0 = true }
            try await before.run(database)
            let first = try await FailoverTests.newestCommitted(database)
            while try await store.checkpoint() < first { try await Task.sleep(for: .milliseconds(50)) }

            _ = try await redis.command("FLUSHALL")
            let after = FailoverTests.Writer(minimum: 10)
            after.stop.withLock { $0 = true }
            try await after.run(database)

            try await Self.waitForCatchUp(store, database)
            try await Self.expectRedisEqualsTheLog(database, store, redis)
        }
    }
}
