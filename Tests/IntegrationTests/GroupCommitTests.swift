@testable import Adapters
import Commands
import Events
import Foundation
import Testing

/// Group commit (`AppendGroups`): one-event appends from concurrent callers share a statement,
/// and each keeps its own outcome.
@Suite struct GroupCommitTests {
    static func event(_ data: String = "{}") -> NewEvent {
        NewEvent(eventID: UUID(), eventType: "Grouped", schemaVersion: 1, data: Data(data.utf8), metadata: EventMetadata(userID: "u"))
    }

    /// One group of eight: a stale expected version, an event id stored before and a payload the
    /// server refuses, among five good appends. Only those three fail, each in its own way.
    @Test func aGroupWithAConflictARepeatAndARefusedEventFailsOnlyThoseAppends() async throws {
        try await TestServers.withDatabase { database in
            let store = database.eventStore
            let existing = "grouped-\(UUID().uuidString.lowercased())"
            let first = Self.event()
            _ = try await store.append(to: existing, expected: .noStream, events: [first, Self.event()])
            let groups = AppendGroups(client: database.client, logger: store.logger, chained: true)
            var requests = (0..<5).map { _ in
                AppendGroups.Request(streamID: "grouped-\(UUID().uuidString.lowercased())", expected: .noStream, event: Self.event())
            }
            requests.insert(AppendGroups.Request(streamID: existing, expected: .exact(1), event: Self.event()), at: 1)
            requests.insert(AppendGroups.Request(streamID: "grouped-\(UUID().uuidString.lowercased())", expected: .any, event: first), at: 3)
            // Not JSON: the `jsonb` cast refuses it (SQLSTATE 22P02), so the statement fails for
            // everyone, and the group goes again one append at a time.
            requests.insert(AppendGroups.Request(streamID: "grouped-\(UUID().uuidString.lowercased())", expected: .noStream, event: Self.event("{not json")), at: 5)

            let outcomes = await groups.commit(requests)
            try #require(outcomes.count == 8)
            for (index, outcome) in outcomes.enumerated() {
                switch (index, outcome) {
                case (1, .rejected), (3, .rejected): break
                case (5, .failed(let error)): #expect(PostgresErrors.isDataRefusal(error), "\(error)")
                case (_, .written(_, let version, _)) where ![1, 3, 5].contains(index): #expect(version == 1)
                default: Issue.record("append \(index): \(outcome)")
                }
            }
            // Through the store, the rejected ones resolve as a lone append would.
            await #expect(throws: EventStoreError.versionConflict(streamID: existing, expected: .exact(1), actual: 2)) {
                _ = try await store.append(to: existing, expected: .exact(1), events: [Self.event()])
            }
            let repeated = try await store.append(to: existing, expected: .noStream, events: [first])
            #expect(repeated.duplicate && repeated.streamVersion == 1)
            #expect(try await store.streamVersion(existing) == 2)
            for (index, request) in requests.enumerated() where ![1, 3, 5].contains(index) {
                let stored = try await store.readStream(request.streamID, from: 1, direction: .forward, limit: 10)
                #expect(stored.map(\.eventID) == [request.event.eventID])
            }
            #expect(try await store.streamVersion(requests[5].streamID) == 0)
            #expect(try await store.streamVersion(requests[3].streamID) == 0)
        }
    }

    /// Through the public append, under concurrency: 32 writers, each round one of them on a
    /// stale version. Appends are grouped, every good one is stored once, and only the stale one
    /// fails, with the version it lost to.
    @Test func concurrentAppendsAreGroupedAndAConflictFailsOnlyItsCommand() async throws {
        try await TestServers.withDatabase { database in
            let store = database.eventStore
            let contested = "contested-\(UUID().uuidString.lowercased())"
            _ = try await store.append(to: contested, expected: .noStream, events: [Self.event()])
            for round in 0..<20 {
                let results = try await withThrowingTaskGroup(of: (String, NewEvent, Result<AppendResult, EventStoreError>).self) { group in
                    for writer in 0..<32 {
                        group.addTask {
                            let event = Self.event()
                            let (stream, expected): (String, ExpectedVersion) =
                                writer == 7 ? (contested, .exact(0)) : ("grouped-\(UUID().uuidString.lowercased())", .noStream)
                            do {
                                return (stream, event, .success(try await store.append(to: stream, expected: expected, events: [event])))
                            } catch let error as EventStoreError {
                                return (stream, event, .failure(error))
                            }
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                for (stream, event, result) in results {
                    switch result {
                    case .success(let appended):
                        #expect(stream != contested, "round \(round): the stale append succeeded")
                        #expect(appended.streamVersion == 1 && !appended.duplicate)
                        let stored = try await store.readStream(stream, from: 1, direction: .forward, limit: 5)
                        #expect(stored.map(\.eventID) == [event.eventID])
                    case .failure(let error):
                        #expect(stream == contested, "round \(round): a good append failed: \(error)")
                        #expect(error == .versionConflict(streamID: contested, expected: .exact(0), actual: 1))
                    }
                }
            }
            let stats = store.groupCommitStats
            #expect(stats.largest > 1, "no group ever held more than one append: \(stats)")
            #expect(stats.appends >= 20 * 32)
        }
    }
}
