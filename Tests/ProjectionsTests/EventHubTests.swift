import Commands
import Events
import Foundation
import Projections
import Synchronization
import Testing

@Suite struct EventHubTests {
    /// The in-memory store, counting the log reads made through it.
    final class CountingStore: EventStore, HeadProbe {
        let inner = InMemoryEventStore()
        let reads = Mutex(0)

        func append(to streamID: String, expected: ExpectedVersion, events: [NewEvent]) async throws -> AppendResult {
            try await inner.append(to: streamID, expected: expected, events: events)
        }
        func readStream(_ streamID: String, from version: Int64, direction: ReadDirection, limit: Int) async throws -> [RecordedEvent] {
            try await inner.readStream(streamID, from: version, direction: direction, limit: limit)
        }
        func readAll(after checkpoint: Checkpoint, limit: Int) async throws -> [RecordedEvent] {
            reads.withLock { $0 += 1 }
            return await inner.readAll(after: checkpoint, limit: limit)
        }
        func priorAppend(firstEventID: UUID) async throws -> AppendResult? { await inner.priorAppend(firstEventID: firstEventID) }
        func streamVersion(_ streamID: String) async throws -> Int64 { try await inner.streamVersion(streamID) }
        func head() async throws -> Checkpoint { await inner.head() }
    }

    @discardableResult
    static func append(_ store: CountingStore, _ stream: String, _ n: Int) async throws -> AppendResult {
        try await store.append(
            to: stream, expected: .any,
            events: [NewEvent(eventID: UUID(), eventType: "E", schemaVersion: 1, data: Data("{\"n\":\(n)}".utf8), metadata: EventMetadata())])
    }

    /// A running hub on `store`, stopped when `body` returns.
    static func withHub<T: Sendable>(
        _ store: CountingStore, buffer: Int = 1024, _ body: @Sendable (EventHub) async throws -> T
    ) async throws -> T {
        let hub = EventHub(store: store, signal: store.inner.signal, bufferSize: buffer, pollInterval: .seconds(60))
        let task = Task { try await hub.run() }
        defer { task.cancel() }
        for _ in 0..<500 where hub.position == nil { try await Task.sleep(for: .milliseconds(5)) }
        return try await body(hub)
    }

    /// The next `count` messages, or fewer if the subscription ends or 10 s pass.
    static func take(_ subscription: HubSubscription, _ count: Int) async throws -> [HubMessage] {
        var messages: [HubMessage] = []
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        while messages.count < count, ContinuousClock.now < deadline {
            switch try await subscription.next(timeout: .milliseconds(200)) {
            case .message(let message): messages.append(message)
            case .idle: continue
            case .ended: return messages
            }
        }
        return messages
    }

    static func numbers(_ messages: [HubMessage]) -> [Int] {
        messages.compactMap { message in
            guard case .event(let event) = message else { return nil }
            return (try? JSONSerialization.jsonObject(with: event.data) as? [String: Int])?["n"]
        }
    }

    @Test func twoHundredSubscribersShareOneFollowerOfTheLog() async throws {
        let store = CountingStore()
        try await Self.withHub(store) { hub in
            let subscriptions = (0..<200).map { _ in hub.subscribe(.category("s")) }
            #expect(hub.followers == 1)
            #expect(hub.subscriberCount == 200)
            let readsBefore = store.reads.withLock { $0 }
            for n in 0..<20 { try await Self.append(store, "s-\(n % 4)", n) }
            for subscription in subscriptions {
                #expect(Self.numbers(try await Self.take(subscription, 20)) == Array(0..<20))
            }
            // One follower read the log for everyone: far fewer reads than subscribers.
            let reads = store.reads.withLock { $0 } - readsBefore
            #expect(reads <= 40, "the log was read \(reads) times for 200 subscribers")
            for subscription in subscriptions { subscription.cancel() }
            #expect(hub.subscriberCount == 0)
        }
    }

    @Test func aSlowSubscriberIsDroppedWithAResumePositionWhileTheOthersKeepReceiving() async throws {
        let store = CountingStore()
        try await Self.withHub(store, buffer: 8) { hub in
            let slow = hub.subscribe(.everything)
            let fast = hub.subscribe(.everything)
            var received: [HubMessage] = []
            for n in 0..<30 {
                try await Self.append(store, "s-1", n)
                received += try await Self.take(fast, 1)
            }
            #expect(Self.numbers(received) == Array(0..<30))
            #expect(hub.subscriberCount == 1, "the slow subscriber left the hub; the fast one stays")
            // The slow one gets what its buffer held, then the drop notice, then nothing.
            let held = try await Self.take(slow, 20)
            #expect(Self.numbers(held) == Array(0..<8))
            guard case .dropped(let resume) = held.last else {
                Issue.record("no drop notice: \(held.count) messages")
                return
            }
            guard case .event(let eighth) = held[7] else { return }
            #expect(resume == eighth.checkpoint)
            // Resuming from that position misses nothing and repeats nothing, then goes live.
            let resumed = hub.subscribe(.everything, after: resume)
            #expect(Self.numbers(try await Self.take(resumed, 22)) == Array(8..<30))
            try await Self.append(store, "s-2", 30)
            #expect(Self.numbers(try await Self.take(resumed, 1)) == [30])
            fast.cancel()
            resumed.cancel()
        }
    }

    @Test func catchingUpWhileEventsArriveHasNoGapAndNoDuplicateAtTheSeam() async throws {
        let store = CountingStore()
        for n in 0..<300 { try await Self.append(store, "s-\(n % 5)", n) }
        try await Self.withHub(store) { hub in
            let writer = Task {
                for n in 300..<600 {
                    try await Self.append(store, "s-\(n % 5)", n)
                    if n % 50 == 0 { await Task.yield() }
                }
            }
            let subscription = hub.subscribe(.everything, after: .start)
            let got = Self.numbers(try await Self.take(subscription, 600))
            try await writer.value
            #expect(got == Array(0..<600))
            subscription.cancel()
        }
    }

    @Test func aSubscriberReceivesOnlyItsStreamOrCategory() async throws {
        let store = CountingStore()
        try await Self.withHub(store) { hub in
            let one = hub.subscribe(.stream("order-1"))
            let orders = hub.subscribe(.category("order"))
            try await Self.append(store, "order-1", 1)
            try await Self.append(store, "orderline-1", 2)
            try await Self.append(store, "order-2", 3)
            try await Self.append(store, "order-1", 4)
            #expect(Self.numbers(try await Self.take(one, 2)) == [1, 4])
            #expect(Self.numbers(try await Self.take(orders, 3)) == [1, 3, 4])
            one.cancel()
            orders.cancel()
        }
    }
}
