@testable import Adapters
import Commands
import Events
import Foundation
import PostgresNIO
import Projections
import Testing

/// Folded read models (`FoldingPostgresProjection`, `agents_by_owner`): a batch applied by the
/// fold, live and in a rebuild, leaves exactly the rows the per-event statements leave; and an
/// event the fold refuses is parked alone.
@Suite(.serialized) struct BatchedProjectionTests {
    /// `agents_by_owner` through its per-event statements, in a table of its own.
    struct IncrementalAgentList: PostgresProjection {
        let inner = AgentListProjection()
        let name = "agents_incremental"
        var tables: [ReadModelTable] {
            inner.tables.map { ReadModelTable(name: "agents_incremental", ddl: $0.ddl.replacingOccurrences(of: "{agents_by_owner}", with: "{agents_incremental}")) }
        }
        func statements(for event: RecordedEvent) throws -> [SQLStatement] {
            try inner.statements(for: event).map { SQLStatement($0.sql.replacingOccurrences(of: "{agents_by_owner}", with: "{agents_incremental}"), $0.binds) }
        }
    }

    static let settings = AgentModelSettings(model: "offline", temperature: 0.25, maxTokens: 64)

    /// Seeded events over 150 agents: creations (some twice), renames before a creation, every
    /// kind of change, plugins added twice and removed, personas set and cleared, deletions, and
    /// names with NUL, the escape marker, quotes, backslashes and non-ASCII. Several agents share
    /// a stream, so one batch changes one row many times.
    static func events(seed: UInt64) throws -> [(stream: String, events: [NewEvent])] {
        var random = SeededRandom(seed: seed)
        let agents = (0..<150).map { _ in UUID() }
        // The marker (U+FDD0) is built from its value: Swift refuses noncharacters in literals.
        let marker = String(Unicode.Scalar(0xFDD0)!)
        let names = ["plain", "with\0nul", marker + "marker", "quote \" and \\ backslash", "naïve — 日本語", "%00 literal", "", "tab\tnew\nline\rcr \\N \\."]
        var appends: [(String, [NewEvent])] = []
        var at = Date(timeIntervalSince1970: 1_764_000_000.123_456)
        for round in 0..<60 {
            var batch: [NewEvent] = []
            for _ in 0..<50 {
                let agent = agents[Int(random.next() % UInt64(agents.count))]
                at = at.addingTimeInterval(Double(random.next() % 1_000) / 997)
                let name = names[Int(random.next() % UInt64(names.count))]
                let plugin = ["search", "python", "sql"][Int(random.next() % 3)]
                let event: any DomainEvent =
                    switch random.next() % 10 {
                    case 0, 1:
                        AgentCreated(
                            agentID: agent, ownerID: "owner-\(random.next() % 4)", name: name, instructions: "i \(round)",
                            settings: settings, plugins: random.next() % 2 == 0 ? [] : ["search"], createdAt: at)
                    case 2: AgentRenamed(agentID: agent, name: name, renamedAt: at)
                    case 3: AgentInstructionsChanged(agentID: agent, instructions: name + " instructions", changedAt: at)
                    case 4: AgentModelSettingsChanged(agentID: agent, settings: AgentModelSettings(model: "m\(round)", temperature: Double(round) / 7, maxTokens: round), changedAt: at)
                    case 5, 6: AgentPluginAdded(agentID: agent, plugin: plugin, addedAt: at)
                    case 7: AgentPluginRemoved(agentID: agent, plugin: plugin, removedAt: at)
                    case 8:
                        AgentPersonaSet(
                            agentID: agent, persona: random.next() % 3 == 0 ? nil : AgentPersona(personaID: agent, label: name, version: round),
                            setAt: at)
                    default: AgentDeleted(agentID: agent, deletedAt: at)
                    }
                batch.append(try NewEvent(event, id: UUID(), metadata: EventMetadata(userID: "u", tenantID: round % 2 == 0 ? "t" : nil)))
            }
            appends.append(("agent-batch-\(round)", batch))
        }
        return appends
    }

    static func rows(_ view: String, _ database: ChronicleDatabase) async throws -> [String] {
        try await database.client.query(
            PostgresQuery(unsafeSQL: "SELECT to_jsonb(t)::text FROM \(view) t ORDER BY agent_id"), logger: TestServers.logger
        ).decode(String.self).all()
    }

    /// The reference: every event's statements in log order, each statement its own transaction.
    ///
    /// Not through a runner: its batch is a transaction of a statement per event, and while one
    /// is open every follower of a log on this server waits (the safe order). 2,000 statements in
    /// one transaction on a machine loaded by the other tests once held back every other test for
    /// minutes. A statement of `agents_by_owner` touches one agent's row, so agents are applied in
    /// lanes side by side, each agent's events in log order.
    static func applyOneByOne(_ store: PostgresProjectionStore<IncrementalAgentList>, _ database: ChronicleDatabase, total: Int) async throws {
        try await store.prepareStorage()
        // The safe order shows events only once every older transaction on the server has ended
        // (other tests' among them): read until all of them are there.
        var events: [RecordedEvent] = []
        let deadline = ContinuousClock.now.advanced(by: .seconds(120))
        while events.count < total, ContinuousClock.now < deadline {
            events += try await database.eventStore.readAll(after: events.last?.checkpoint ?? .start, limit: 100_000)
            if events.count < total { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(events.count == total, "the log showed \(events.count) of \(total) events")
        var lanes: [SQLValue: [RecordedEvent]] = [:]
        var unkeyed: [RecordedEvent] = []
        for event in events {
            if let key = try AgentListProjection().foldChange(for: event)?.key { lanes[key, default: []].append(event) } else { unkeyed.append(event) }
        }
        let tables = store.physicalNames(generation: 1)
        let work = Array(lanes.values) + (unkeyed.isEmpty ? [] : [unkeyed])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for start in 0..<8 {
                group.addTask {
                    for lane in stride(from: start, to: work.count, by: 8) {
                        for event in work[lane] {
                            for statement in try store.projection.statements(for: event) {
                                _ = try await database.client.query(statement.query(tables: tables), logger: TestServers.logger)
                            }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func aBatchedRebuildAndTheLiveFoldEqualTheIncrementalReadModelRowForRow(seed: UInt64) async throws {
        try await TestServers.withDatabase(listen: true) { database in
            for (stream, events) in try Self.events(seed: seed) {
                _ = try await database.eventStore.append(to: stream, expected: .noStream, events: events)
            }
            let incremental = PostgresProjectionStore(projection: IncrementalAgentList(), client: database.client, logger: TestServers.logger)
            let folded = PostgresProjectionStore(projection: AgentListProjection(), client: database.client, logger: TestServers.logger)
            let platform = try TestServers.platform(database)
            let many = Task { try await platform.runner(folded, standbyInterval: .milliseconds(100), pollInterval: .milliseconds(100)).run() }
            defer { many.cancel() }
            try await Self.applyOneByOne(incremental, database, total: 3_000)
            try await ProjectorTests.caughtUp(folded, database, timeout: .seconds(300))
            let expected = try await Self.rows("agents_incremental", database)
            #expect(expected.count > 100)
            let live = try await Self.rows("agents_by_owner", database)
            let liveDiffers = Set(live).symmetricDifference(expected).sorted()
            #expect(live.count == expected.count && liveDiffers.isEmpty, "the live fold differs from the statements: \(liveDiffers.prefix(4))")

            many.cancel()
            _ = await many.result
            let rebuilt = try await folded.rebuild(events: database.eventStore, batchSize: 1_000)
            #expect(rebuilt.events == 3_000)
            let afterRebuild = try await Self.rows("agents_by_owner", database)
            let rebuildDiffers = Set(afterRebuild).symmetricDifference(expected).sorted()
            #expect(afterRebuild.count == expected.count && rebuildDiffers.isEmpty, "the rebuild differs from the statements: \(rebuildDiffers.prefix(4))")
        }
    }

    /// A batch of agent events holding one the fold cannot read: that event is parked (its stream
    /// held behind it), every other event of the batch is applied.
    @Test func aBatchHoldingARefusedEventParksOnlyThatEvent() async throws {
        try await TestServers.withDatabase(listen: true) { database in
            let a = UUID(), b = UUID()
            let streamA = "agent-\(a.uuidString.lowercased())", streamB = "agent-\(b.uuidString.lowercased())"
            func append(_ stream: String, _ event: any DomainEvent) async throws {
                _ = try await database.eventStore.append(to: stream, expected: .any, events: [try NewEvent(event, id: UUID(), metadata: EventMetadata())])
            }
            try await append(streamA, AgentCreated(agentID: a, ownerID: "o", name: "a", instructions: "i", settings: Self.settings, plugins: [], createdAt: Date()))
            try await append(streamB, AgentCreated(agentID: b, ownerID: "o", name: "b", instructions: "i", settings: Self.settings, plugins: [], createdAt: Date()))
            // An AgentRenamed whose agent id is not a UUID: it cannot be decoded.
            _ = try await database.eventStore.append(to: streamA, expected: .any, events: [
                NewEvent(eventID: UUID(), eventType: AgentRenamed.eventType, schemaVersion: 1,
                         data: Data(#"{"agent_id":"not-a-uuid","name":"x","renamed_at":"2026-01-01T00:00:00.000Z"}"#.utf8), metadata: EventMetadata())
            ])
            try await append(streamB, AgentRenamed(agentID: b, name: "b renamed", renamedAt: Date()))
            try await append(streamA, AgentRenamed(agentID: a, name: "a held", renamedAt: Date()))
            let store = PostgresProjectionStore(projection: AgentListProjection(), client: database.client, logger: TestServers.logger)
            let parking = PostgresParkedEventStore(client: database.client, logger: TestServers.logger)
            let task = Task { try await ProjectorTests.runner(store, database).run() }
            defer { task.cancel() }
            try await ProjectorTests.caughtUp(store, database, timeout: .seconds(60))

            let names = try await database.client.query(
                "SELECT name FROM agents_by_owner ORDER BY name", logger: TestServers.logger).decode(String.self).all()
            #expect(names == ["a", "b renamed"])
            let parked = try await parking.parked(projector: "agents_by_owner")
            let poison = try #require(parked.first { $0.heldBehind == nil })
            #expect(poison.streamID == streamA && poison.streamVersion == 2 && poison.attempts == 3, "\(parked)")
            #expect(poison.error.contains("refused the event"), "\(poison.error)")
            #expect(parked.filter { $0.heldBehind == poison.eventID }.map(\.streamVersion) == [3])
            #expect(parked.count == 2)
        }
    }
}

/// SplitMix64: seeded and repeatable.
struct SeededRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
