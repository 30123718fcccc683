import Commands
import Events
import Foundation
import Projections
import Synchronization
import Testing

@Suite struct EventFollowerTests {
    static func event(_ n: Int) -> NewEvent {
        NewEvent(eventID: UUID(), eventType: "E", schemaVersion: 1, data: Data("{\"n\":\(n)}".utf8), metadata: EventMetadata())
    }

    /// Collects what the follower hands over, and lets a test wait for a count.
    final class Collector: Sendable {
        let events = Mutex<[RecordedEvent]>([])
        let batches = Mutex<Int>(0)

        func add(_ batch: [RecordedEvent]) {
            events.withLock { $0 += batch }
            batches.withLock { $0 += 1 }
        }

        var count: Int { events.withLock { $0.count } }

        func waitFor(_ n: Int) async throws {
            for _ in 0..<1000 where count < n { try await Task.sleep(for: .milliseconds(5)) }
        }
    }

    @Test func deliversEveryEventOnceInOrderThenFollowsLiveAppends() async throws {
        let store = InMemoryEventStore()
        for n in 0..<25 { _ = try await store.append(to: "s-\(n % 3)", expected: .any, events: [Self.event(n)]) }
        let collector = Collector()
        // A long poll interval: live events must arrive through the signal, not the poll.
        let follower = EventFollower(store: store, signal: store.signal, batchSize: 10, pollInterval: .seconds(60))
        let task = Task { try await follower.follow(from: .start) { collector.add($0) } }
        try await collector.waitFor(25)
        for n in 25..<40 { _ = try await store.append(to: "s-live", expected: .any, events: [Self.event(n)]) }
        try await collector.waitFor(40)
        task.cancel()
        _ = await task.result
        let seen = collector.events.withLock { $0 }
        #expect(seen.count == 40)
        #expect(Set(seen.map(\.eventID)).count == 40)
        #expect(zip(seen, seen.dropFirst()).allSatisfy { $0.checkpoint < $1.checkpoint })
        #expect(collector.batches.withLock { $0 } >= 3)  // 25 events in batches of at most 10
    }

    @Test func startsAfterTheGivenCheckpoint() async throws {
        let store = InMemoryEventStore()
        var checkpoints: [Checkpoint] = []
        for n in 0..<5 { checkpoints.append(try await store.append(to: "s", expected: .any, events: [Self.event(n)]).checkpoint) }
        let collector = Collector()
        let follower = EventFollower(store: store, signal: store.signal, pollInterval: .milliseconds(10))
        let start = checkpoints[2]
        let task = Task { try await follower.follow(from: start) { collector.add($0) } }
        try await collector.waitFor(2)
        try await Task.sleep(for: .milliseconds(50))
        task.cancel()
        _ = await task.result
        #expect(collector.events.withLock { $0.map(\.checkpoint) } == Array(checkpoints[3...]))
    }

    @Test func aFailingHandlerStopsTheFollowerWithItsError() async throws {
        struct Boom: Error {}
        let store = InMemoryEventStore()
        _ = try await store.append(to: "s", expected: .any, events: [Self.event(0)])
        let follower = EventFollower(store: store, signal: store.signal)
        await #expect(throws: Boom.self) { try await follower.follow(from: .start) { _ in throw Boom() } }
    }
}
