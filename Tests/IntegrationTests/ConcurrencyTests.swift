import Adapters
import Commands
import Events
import Foundation
import Testing

@Suite(.serialized) struct ConcurrencyTests {
    static func event() -> NewEvent {
        NewEvent(eventID: UUID(), eventType: "Race", schemaVersion: 1, data: Data("{}".utf8), metadata: EventMetadata())
    }

    enum Outcome: Sendable { case won(UUID), conflicted(Int64) }

    @Test func twoWritersAtTheSameVersionOneWinsOneGetsTheTypedConflictRepeated1000Times() async throws {
        try await TestServers.withDatabase { database in
            let store = database.eventStore
            let stream = "race-\(UUID().uuidString.lowercased())"
            var winners: [UUID] = []
            for version in Int64(0)..<1000 {
                let outcomes = try await withThrowingTaskGroup(of: Outcome.self) { group in
                    for _ in 0..<2 {
                        group.addTask {
                            let event = Self.event()
                            do {
                                _ = try await store.append(to: stream, expected: .exact(version), events: [event])
                                return .won(event.eventID)
                            } catch let EventStoreError.versionConflict(_, _, actual) {
                                return .conflicted(actual)
                            }
                        }
                    }
                    return try await group.reduce(into: [Outcome]()) { $0.append($1) }
                }
                let won = outcomes.compactMap { if case .won(let id) = $0 { id } else { nil } }
                let conflicts = outcomes.compactMap { if case .conflicted(let actual) = $0 { actual } else { nil } }
                try #require(won.count == 1 && conflicts.count == 1, "round \(version): \(won.count) won, \(conflicts.count) conflicted")
                #expect(conflicts[0] == version + 1, "the conflict reported version \(conflicts[0]), not \(version + 1)")
                winners += won
            }
            // No lost write: the stream holds exactly the winners, in order.
            var stored: [RecordedEvent] = []
            while stored.count < 1000 {
                let page = try await store.readStream(stream, from: Int64(stored.count + 1), direction: .forward, limit: 500)
                if page.isEmpty { break }
                stored += page
            }
            #expect(stored.map(\.eventID) == winners)
            #expect(stored.map(\.streamVersion) == Array(1...1000))
        }
    }

    /// Regression: a repeat that checked for an earlier append just before the first copy
    /// committed then decided on the new state and answered "agent.exists" instead of the
    /// first result. 25 rounds of 8 concurrent copies make that window likely to be hit.
    @Test func theSameCommandSentConcurrentlyAppendsOnce() async throws {
        try await TestServers.withDatabase { database in
            let handler = CommandHandler<AgentDecider>(store: database.eventStore)
            for _ in 0..<25 {
                let id = UUID()
                let stream = StreamID(category: AgentDecider.category, id: id)
                let command = AgentDecider.Command.create(CreateAgent(
                    agentID: id, ownerID: "u", name: "Twice", instructions: "i",
                    settings: AgentModelSettings(model: "offline", temperature: 0.5, maxTokens: 10), now: Date()))
                let context = CommandContext(commandID: "idem-\(UUID())", userID: "u")
                let results = try await withThrowingTaskGroup(of: CommandResult<AgentDecider.State>.self) { group in
                    for _ in 0..<8 { group.addTask { try await handler.handle(command, on: stream, context: context) } }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(try await database.eventStore.streamVersion(stream.description) == 1)
                #expect(Set(results.compactMap { $0.append?.positions }).count == 1, "the repeats reported different results")
                #expect(results.filter { !$0.duplicate }.count == 1)
                // And sequentially, long after.
                let again = try await handler.handle(command, on: stream, context: context)
                #expect(again.duplicate && again.append?.positions == results[0].append?.positions)
            }
        }
    }

    @Test func theSameEventsAppendedConcurrentlyWithAnyVersionGoInOnce() async throws {
        try await TestServers.withDatabase { database in
            let stream = "idem-\(UUID().uuidString.lowercased())"
            let events = [Self.event(), Self.event()]
            let results = try await withThrowingTaskGroup(of: AppendResult.self) { group in
                for _ in 0..<8 { group.addTask { try await database.eventStore.append(to: stream, expected: .any, events: events) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(try await database.eventStore.streamVersion(stream) == 2)
            #expect(Set(results.map(\.positions)).count == 1)
            #expect(results.filter { !$0.duplicate }.count == 1)
        }
    }
}
