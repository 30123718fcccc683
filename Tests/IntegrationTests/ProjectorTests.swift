import Adapters
import Composition
import Commands
import Events
import Foundation
import PostgresNIO
import Projections
import Workers
import Synchronization
import Testing

@Suite struct ProjectorTests {
    static let settings = AgentModelSettings(model: "offline", temperature: 0.5, maxTokens: 10)

    static func createAgent(_ handler: CommandHandler<AgentDecider>, owner: String, name: String = "A") async throws -> UUID {
        let id = UUID()
        _ = try await handler.handle(
            .create(CreateAgent(agentID: id, ownerID: owner, name: name, instructions: "i", settings: settings, now: Date())),
            on: StreamID(category: AgentDecider.category, id: id), context: CommandContext(userID: owner))
        return id
    }

    static func runner<S: ProjectionStore>(_ store: S, _ database: ChronicleDatabase) throws -> ProjectorRunner<S> {
        try TestServers.platform(database).runner(store, standbyInterval: .milliseconds(100), pollInterval: .milliseconds(100))
    }

    /// Waits until the store's checkpoint reaches the newest committed event. (Not `head()`: that
    /// honours the xmin horizon, which other tests' transactions hold back for a moment.)
    static func caughtUp<S: ProjectionStore>(_ store: S, _ database: ChronicleDatabase, timeout: Duration = .seconds(20)) async throws {
        let head = try await TestServers.newestCommitted(database)
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while try await store.checkpoint() < head {
            guard ContinuousClock.now < deadline else {
                Issue.record("projector \(store.projectorName) did not reach \(head)")
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    @Test func aPostgresProjectionWritesRowsAndCheckpointTogether() async throws {
        try await TestServers.withDatabase(listen: true) { database in
            let handler = CommandHandler<AgentDecider>(store: database.eventStore)
            let a1 = try await Self.createAgent(handler, owner: "alice", name: "one")
            _ = try await Self.createAgent(handler, owner: "alice", name: "two")
            _ = try await Self.createAgent(handler, owner: "bob", name: "three")
            _ = try await handler.handle(.delete(DeleteAgent(agentID: a1, now: Date())), on: StreamID(category: "agent", id: a1), context: CommandContext())
            let store = PostgresProjectionStore(projection: AgentListProjection(), client: database.client, logger: TestServers.logger)
            let task = Task { try await Self.runner(store, database).run() }
            defer { task.cancel() }
            try await Self.caughtUp(store, database)
            let rows = try await database.client.query(
                "SELECT owner_id, name, status, version FROM agents_by_owner ORDER BY name", logger: TestServers.logger
            ).decode((String, String, String, Int64).self).all()
            #expect(rows.map(\.0) == ["alice", "bob", "alice"])
            #expect(rows.map(\.2) == ["deleted", "active", "active"])
            #expect(rows.first?.3 == 2)
            // Live: a new agent shows up without a restart.
            _ = try await Self.createAgent(handler, owner: "carol", name: "four")
            try await Self.caughtUp(store, database)
            let count = try await database.client.query("SELECT count(*) FROM agents_by_owner", logger: TestServers.logger).decode(Int64.self).all()
            #expect(count == [4])
        }
    }

    @Test func aHolderWithAStaleEpochCannotWrite() async throws {
        try await TestServers.withDatabase { database in
            let store = PostgresProjectionStore(projection: AgentListProjection(), client: database.client, logger: TestServers.logger)
            try await store.prepareStorage()
            let leases = PostgresLeaseProvider(client: database.client, logger: TestServers.logger)
            let epochs = Mutex<[Int64]>([])
            for _ in 0..<2 { _ = try await leases.withLease(store.projectorName) { epoch in epochs.withLock { $0.append(epoch) } } }
            #expect(epochs.withLock { $0 } == [1, 2])
            await #expect(throws: ProjectionError.fenced(projector: store.projectorName)) {
                try await store.apply([], after: .start, through: Checkpoint(transactionID: 1, position: 1), epoch: 1)
            }
            try await store.apply([], after: .start, through: Checkpoint(transactionID: 1, position: 1), epoch: 2)
            #expect(try await store.checkpoint() == Checkpoint(transactionID: 1, position: 1))
            // A checkpoint never moves backwards, even for the holder.
            try await store.apply([], after: Checkpoint(transactionID: 1, position: 1), through: Checkpoint(transactionID: 0, position: 9), epoch: 2)
            #expect(try await store.checkpoint() == Checkpoint(transactionID: 1, position: 1))
            // A holder whose idea of the checkpoint is stale is told to reload it.
            await #expect(throws: ProjectionError.checkpointMoved(projector: store.projectorName)) {
                try await store.apply([], after: .start, through: Checkpoint(transactionID: 2, position: 2), epoch: 2)
            }
        }
    }

    @Test func aSecondHolderIsRefusedWhileTheFirstHoldsTheLease() async throws {
        try await TestServers.withDatabase { database in
            let leases = PostgresLeaseProvider(client: database.client, logger: TestServers.logger)
            let inside = try await leases.withLease("solo") { _ in
                let second = try await leases.withLease("solo") { _ in Issue.record("two holders at once") }
                #expect(second == false)
            }
            #expect(inside)
        }
    }

    /// A projection that refuses events whose payload says so, while `broken` is set.
    struct FlakyProjection: PostgresProjection {
        struct Refused: Error, CustomStringConvertible { var description: String { "refused by the test" } }
        let name = "flaky_counts"
        let toggle: Switch

        var tables: [ReadModelTable] {
            [ReadModelTable(name: "flaky_counts", ddl: "CREATE TABLE IF NOT EXISTS {flaky_counts} (stream_id text PRIMARY KEY, events bigint NOT NULL, last_version bigint NOT NULL)")]
        }

        func statements(for event: RecordedEvent) throws -> [SQLStatement] {
            if toggle.broken.withLock({ $0 }), String(decoding: event.data, as: UTF8.self).contains("poison") { throw Refused() }
            return [SQLStatement("""
                INSERT INTO {flaky_counts} (stream_id, events, last_version) VALUES ($1, 1, $2)
                ON CONFLICT (stream_id) DO UPDATE SET events = {flaky_counts}.events + 1, last_version = $2
                """, [.text(event.streamID), .int(event.streamVersion)])]
        }
    }

    final class Switch: Sendable { let broken = Mutex(true) }

    @Test func aPoisonEventIsParkedItsStreamHeldOthersFlowAndRetryAppliesIt() async throws {
        try await TestServers.withDatabase(listen: true) { database in
            let toggle = Switch()
            let projection = FlakyProjection(toggle: toggle)
            let store = PostgresProjectionStore(projection: projection, client: database.client, logger: TestServers.logger)
            let parking = PostgresParkedEventStore(client: database.client, logger: TestServers.logger)
            func append(_ stream: String, _ text: String) async throws {
                _ = try await database.eventStore.append(to: stream, expected: .any, events: [
                    NewEvent(eventID: UUID(), eventType: "Flaky", schemaVersion: 1, data: Data("{\"t\":\"\(text)\"}".utf8), metadata: EventMetadata())
                ])
            }
            try await append("bad-1", "ok")
            try await append("bad-1", "poison")
            try await append("bad-1", "after poison")
            try await append("good-1", "ok")
            try await append("bad-1", "later")
            try await append("good-1", "ok")
            let task = Task { try await Self.runner(store, database).run() }
            defer { task.cancel() }
            try await Self.caughtUp(store, database)

            let counts = try await database.client.query(
                "SELECT stream_id, events, last_version FROM flaky_counts ORDER BY stream_id", logger: TestServers.logger
            ).decode((String, Int64, Int64).self).all()
            #expect(counts.map(\.0) == ["bad-1", "good-1"])
            #expect(counts.map(\.1) == [1, 2], "the held stream moved on, or the other stream stopped")
            let parked = try await parking.parked(projector: projection.name)
            #expect(parked.count == 3)
            let poison = try #require(parked.first { $0.heldBehind == nil })
            #expect(poison.streamVersion == 2 && poison.error == "refused by the test" && poison.attempts == 3)
            #expect(parked.filter { $0.heldBehind == poison.eventID }.map(\.streamVersion) == [3, 4])

            // Fixed; the operator retries: the poison event and those held behind it apply in order.
            toggle.broken.withLock { $0 = false }
            #expect(try await parking.request(.retry, projector: projection.name, eventID: poison.eventID))
            for _ in 0..<200 where !(try await parking.parked(projector: projection.name)).isEmpty {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(try await parking.parked(projector: projection.name).isEmpty)
            let after = try await database.client.query(
                "SELECT events, last_version FROM flaky_counts WHERE stream_id = 'bad-1'", logger: TestServers.logger
            ).decode((Int64, Int64).self).all()
            #expect(after.first?.0 == 4 && after.first?.1 == 4)
            // And the stream flows live again.
            try await append("bad-1", "live")
            try await Self.caughtUp(store, database)
            let live = try await database.client.query("SELECT events FROM flaky_counts WHERE stream_id = 'bad-1'", logger: TestServers.logger).decode(Int64.self).all()
            #expect(live == [5])
        }
    }

    /// Writes each event's `n` into a smallint column: n = 70000 is refused by Postgres itself
    /// (SQLSTATE 22003) when the batch is applied, not by the projection.
    struct SmallintProjection: PostgresProjection {
        let name = "smallint_values"

        var tables: [ReadModelTable] {
            [ReadModelTable(name: "smallint_values", ddl: """
                CREATE TABLE IF NOT EXISTS {smallint_values} (stream_id text NOT NULL, version bigint NOT NULL, n smallint NOT NULL,
                PRIMARY KEY (stream_id, version))
                """)]
        }

        func statements(for event: RecordedEvent) throws -> [SQLStatement] {
            let n = (try? JSONDecoder().decode([String: Int].self, from: event.data))?["n"] ?? 0
            return [SQLStatement(
                "INSERT INTO {smallint_values} (stream_id, version, n) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                [.text(event.streamID), .int(event.streamVersion), .int(Int64(n))])]
        }
    }

    @Test func anEventTheDatabaseRefusesIsParkedAndTheRestOfItsBatchApplied() async throws {
        try await TestServers.withDatabase(listen: true) { database in
            let projection = SmallintProjection()
            let store = PostgresProjectionStore(projection: projection, client: database.client, logger: TestServers.logger)
            let parking = PostgresParkedEventStore(client: database.client, logger: TestServers.logger)
            func append(_ stream: String, _ n: Int) async throws {
                _ = try await database.eventStore.append(to: stream, expected: .any, events: [
                    NewEvent(eventID: UUID(), eventType: "Sized", schemaVersion: 1, data: Data("{\"n\":\(n)}".utf8), metadata: EventMetadata())
                ])
            }
            try await append("bad-1", 1)
            try await append("bad-1", 70_000)
            try await append("good-1", 2)
            try await append("bad-1", 3)
            try await append("good-1", 4)
            let task = Task { try await Self.runner(store, database).run() }
            defer { task.cancel() }
            // Correctness, not speed: a loaded machine (other tests' open transactions hold every
            // reader of the log back) gets a minute.
            try await Self.caughtUp(store, database, timeout: .seconds(60))

            let rows = try await database.client.query(
                "SELECT stream_id, n FROM smallint_values ORDER BY stream_id, version", logger: TestServers.logger
            ).decode((String, Int16).self).all()
            let parked = try await parking.parked(projector: projection.name)
            let checkpoint = try await store.checkpoint()
            #expect(
                rows.map(\.0) == ["bad-1", "good-1", "good-1"] && rows.map(\.1) == [1, 2, 4],
                "rows \(rows); parked \(parked.map { ($0.streamID, $0.streamVersion, $0.status, $0.error) }); checkpoint \(checkpoint)")
            let poison = try #require(parked.first { $0.heldBehind == nil })
            #expect(poison.streamVersion == 2 && poison.attempts == 3)
            #expect(poison.error.contains("SQLSTATE 22003"), "\(poison.error)")
            #expect(parked.filter { $0.heldBehind == poison.eventID }.map(\.streamVersion) == [3])

            // A retry is refused again: it stays parked, with its follower still held.
            #expect(try await parking.request(.retry, projector: projection.name, eventID: poison.eventID))
            for _ in 0..<200 where (try await parking.parked(projector: projection.name)).contains(where: { $0.status != "parked" }) {
                try await Task.sleep(for: .milliseconds(50))
            }
            let again = try await parking.parked(projector: projection.name)
            #expect(again.count == 2 && again.contains { $0.eventID == poison.eventID && $0.heldBehind == nil }, "\(again)")
            // Skipped: the held event applies, and the stream flows again.
            #expect(try await parking.request(.skip, projector: projection.name, eventID: poison.eventID))
            for _ in 0..<200 where !(try await parking.parked(projector: projection.name)).isEmpty {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(try await parking.parked(projector: projection.name).isEmpty)
            try await append("bad-1", 5)
            try await Self.caughtUp(store, database)
            let bad = try await database.client.query(
                "SELECT n FROM smallint_values WHERE stream_id = 'bad-1' ORDER BY version", logger: TestServers.logger
            ).decode(Int16.self).all()
            #expect(bad == [1, 3, 5])
        }
    }

    @Test func skippingAParkedEventReleasesItsStreamWithoutIt() async throws {
        try await TestServers.withDatabase(listen: true) { database in
            let toggle = Switch()
            let projection = FlakyProjection(toggle: toggle)
            let store = PostgresProjectionStore(projection: projection, client: database.client, logger: TestServers.logger)
            let parking = PostgresParkedEventStore(client: database.client, logger: TestServers.logger)
            for text in ["poison", "next"] {
                _ = try await database.eventStore.append(to: "s-1", expected: .any, events: [
                    NewEvent(eventID: UUID(), eventType: "Flaky", schemaVersion: 1, data: Data("{\"t\":\"\(text)\"}".utf8), metadata: EventMetadata())
                ])
            }
            let task = Task { try await Self.runner(store, database).run() }
            defer { task.cancel() }
            try await Self.caughtUp(store, database)
            let poison = try #require(try await parking.parked(projector: projection.name).first { $0.heldBehind == nil })
            #expect(try await parking.request(.skip, projector: projection.name, eventID: poison.eventID))
            for _ in 0..<200 where !(try await parking.parked(projector: projection.name)).isEmpty {
                try await Task.sleep(for: .milliseconds(50))
            }
            let counts = try await database.client.query("SELECT events, last_version FROM flaky_counts", logger: TestServers.logger).decode((Int64, Int64).self).all()
            #expect(counts.first?.0 == 1 && counts.first?.1 == 2)
        }
    }

    @Test func aRedisProjectionAppliesBatchesWithItsCheckpointOnce() async throws {
        try await TestServers.withDatabase(listen: true) { database in
            let redis = RedisClient(settings: try TestServers.redis(), logger: TestServers.logger)
            let projection = AgentSummaryProjection()
            let store = RedisProjectionStore(
                projection: projection, redis: redis, parking: PostgresParkedEventStore(client: database.client, logger: TestServers.logger),
                keyspace: database.settings.database, logger: TestServers.logger)
            let key = { (id: UUID) in store.prefix + AgentSummaryProjection.key(id) }
            let handler = CommandHandler<AgentDecider>(store: database.eventStore)
            let agent = try await Self.createAgent(handler, owner: "dora", name: "cached")
            _ = try await handler.handle(
                .changeInstructions(ChangeAgentInstructions(agentID: agent, instructions: "new", now: Date())),
                on: StreamID(category: "agent", id: agent), context: CommandContext())
            let task = Task { try await Self.runner(store, database).run() }
            defer { task.cancel() }
            try await Self.caughtUp(store, database)
            let hash = try await redis.command("HGETALL", key(agent))
            let fields = Dictionary(uniqueKeysWithValues: stride(from: 0, to: hash.array!.count, by: 2).map {
                (hash.array![$0].string!, hash.array![$0 + 1].string!)
            })
            #expect(fields["name"] == "cached" && fields["instructions"] == "new" && fields["version"] == "2")
            // The same batch again (a replay after a crash) changes nothing.
            let events = try await database.eventStore.readStream("agent-\(agent.uuidString.lowercased())", from: 1, direction: .forward, limit: 10)
            _ = try await redis.command("HSET", key(agent), "instructions", "tampered")
            try await store.apply(events.map { .apply($0, try store.writes(for: $0)) }, after: .start, through: events.last!.checkpoint, epoch: Int64.max / 2)
            #expect(try await redis.command("HGET", key(agent), "instructions") == .string("tampered"))
        }
    }
}

@Suite struct ReadYourWritesTests {
    @Test func aQueryWaitsUntilTheReadModelHasPassedTheCommandsCheckpoint() async throws {
        try await TestServers.withDatabase(listen: true) { database in
            let store = PostgresProjectionStore(projection: AgentListProjection(), client: database.client, logger: TestServers.logger)
            try await store.prepareStorage()
            let handler = CommandHandler<AgentDecider>(store: database.eventStore)
            let id = UUID()
            let result = try await handler.handle(
                .create(CreateAgent(agentID: id, ownerID: "u", name: "ryw", instructions: "i", settings: ProjectorTests.settings, now: Date())),
                on: StreamID(category: "agent", id: id), context: CommandContext())
            let written = try #require(result.append?.checkpoint)
            // No projector runs yet: the wait is bounded and says it did not get there.
            #expect(try await ReadYourWrites.wait(for: store, toReach: written, timeout: .milliseconds(200)) == false)
            let runner = Task { try await ProjectorTests.runner(store, database).run() }
            defer { runner.cancel() }
            #expect(try await ReadYourWrites.wait(for: store, toReach: written, timeout: .seconds(20)))
            let rows = try await database.client.query(
                "SELECT count(*) FROM agents_by_owner WHERE agent_id = \(id)", logger: TestServers.logger).decode(Int64.self).all()
            #expect(rows == [1], "the wait returned before the row was readable")
        }
    }
}
