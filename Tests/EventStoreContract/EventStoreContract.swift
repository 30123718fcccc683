import Commands
import Events
import Foundation

/// The behaviour every `EventStore` adapter must have. Each case gets a fresh, empty store and
/// throws `ContractFailure` on a difference, so any test framework can run it by name.
public enum EventStoreContract {
    public typealias Case = @Sendable (any EventStore) async throws -> Void

    public static let cases: [String: Case] = [
        "appendsAndReadsAStreamForward": appendsAndReadsAStreamForward,
        "readsAStreamBackward": readsAStreamBackward,
        "noStreamRefusesAnExistingStream": noStreamRefusesAnExistingStream,
        "exactVersionRefusesAStaleOrFutureVersion": exactVersionRefusesAStaleOrFutureVersion,
        "streamExistsRefusesAnEmptyStream": streamExistsRefusesAnEmptyStream,
        "anyAppendsWhateverTheVersion": anyAppendsWhateverTheVersion,
        "manyEventsGoInTogetherWithConsecutiveVersions": manyEventsGoInTogetherWithConsecutiveVersions,
        "repeatedEventIDsAppendNothingAndReturnTheFirstResult": repeatedEventIDsAppendNothingAndReturnTheFirstResult,
        "partlyRepeatedEventIDsAreAnIdempotencyMismatch": partlyRepeatedEventIDsAreAnIdempotencyMismatch,
        "readAllReturnsEverythingInCheckpointOrderAfterACheckpoint": readAllReturnsEverythingInCheckpointOrderAfterACheckpoint,
        "priorAppendFindsTheWholeBatchOfACommand": priorAppendFindsTheWholeBatchOfACommand,
        "priorAppendAndStreamAnswerAsTheTwoReadsApart": priorAppendAndStreamAnswerAsTheTwoReadsApart,
        "metadataAndPayloadRoundTrip": metadataAndPayloadRoundTrip,
        "streamVersionOfAMissingStreamIsZero": streamVersionOfAMissingStreamIsZero,
        "streamVersionsReadsSeveralStreamsAtOnce": streamVersionsReadsSeveralStreamsAtOnce,
    ]

    public static var names: [String] { cases.keys.sorted() }

    // MARK: - helpers

    public static func event(_ n: Int = 0, type: String = "ContractEvent", id: UUID = UUID(), metadata: EventMetadata = EventMetadata()) -> NewEvent {
        NewEvent(eventID: id, eventType: type, schemaVersion: 1, data: Data(#"{"n":\#(n)}"#.utf8), metadata: metadata)
    }

    static func stream() -> String { "contract-\(UUID().uuidString.lowercased())" }

    /// Payloads compared as JSON: a store may normalise the bytes (Postgres jsonb does).
    static func json(_ data: Data) -> JSONValue? { try? JSONDecoder().decode(JSONValue.self, from: data) }

    static func sameJSON(_ a: [Data], _ b: [Data]) -> Bool { a.map(json) == b.map(json) }

    /// `readAll` only returns events no open transaction can overtake, and an open transaction
    /// anywhere on the server (another database too) holds it back for a moment. Reads until at
    /// least `count` events are visible, for up to 10 s.
    static func readAllEventually(_ store: any EventStore, after checkpoint: Checkpoint, count: Int, limit: Int = 100) async throws -> [RecordedEvent] {
        for _ in 0..<1000 {
            let events = try await store.readAll(after: checkpoint, limit: limit)
            if events.count >= count { return events }
            try await Task.sleep(for: .milliseconds(10))
        }
        return try await store.readAll(after: checkpoint, limit: limit)
    }

    static func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        if !condition { throw ContractFailure(message()) }
    }

    static func expectConflict(_ body: () async throws -> Void, actual: Int64) async throws {
        do {
            try await body()
            throw ContractFailure("expected a version conflict, the append succeeded")
        } catch let EventStoreError.versionConflict(_, _, reported) {
            try expect(reported == actual, "conflict reported version \(reported), stream is at \(actual)")
        }
    }

    // MARK: - cases

    static func appendsAndReadsAStreamForward(_ store: any EventStore) async throws {
        let s = stream()
        let first = try await store.append(to: s, expected: .noStream, events: [event(1)])
        let second = try await store.append(to: s, expected: .exact(1), events: [event(2)])
        try expect(first.streamVersion == 1 && second.streamVersion == 2, "versions \(first.streamVersion), \(second.streamVersion)")
        try expect(!first.duplicate && !second.duplicate, "fresh appends marked duplicate")
        try expect(first.checkpoint < second.checkpoint, "checkpoints do not increase")
        let read = try await store.readStream(s, from: 1, direction: .forward, limit: 10)
        try expect(read.map(\.streamVersion) == [1, 2], "read versions \(read.map(\.streamVersion))")
        try expect(sameJSON(read.map(\.data), [event(1).data, event(2).data]), "payloads differ")
        let fromTwo = try await store.readStream(s, from: 2, direction: .forward, limit: 10)
        try expect(fromTwo.map(\.streamVersion) == [2], "from 2 read \(fromTwo.map(\.streamVersion))")
        let limited = try await store.readStream(s, from: 1, direction: .forward, limit: 1)
        try expect(limited.count == 1, "limit 1 read \(limited.count)")
    }

    static func readsAStreamBackward(_ store: any EventStore) async throws {
        let s = stream()
        _ = try await store.append(to: s, expected: .noStream, events: [event(1), event(2), event(3)])
        let all = try await store.readStream(s, from: .max, direction: .backward, limit: 10)
        try expect(all.map(\.streamVersion) == [3, 2, 1], "backward read \(all.map(\.streamVersion))")
        let fromTwo = try await store.readStream(s, from: 2, direction: .backward, limit: 1)
        try expect(fromTwo.map(\.streamVersion) == [2], "backward from 2 read \(fromTwo.map(\.streamVersion))")
    }

    static func noStreamRefusesAnExistingStream(_ store: any EventStore) async throws {
        let s = stream()
        _ = try await store.append(to: s, expected: .noStream, events: [event()])
        try await expectConflict({ _ = try await store.append(to: s, expected: .noStream, events: [event()]) }, actual: 1)
    }

    static func exactVersionRefusesAStaleOrFutureVersion(_ store: any EventStore) async throws {
        let s = stream()
        _ = try await store.append(to: s, expected: .noStream, events: [event(), event()])
        try await expectConflict({ _ = try await store.append(to: s, expected: .exact(1), events: [event()]) }, actual: 2)
        // A version ahead of the stream must not leave a gap.
        try await expectConflict({ _ = try await store.append(to: s, expected: .exact(5), events: [event()]) }, actual: 2)
        let ok = try await store.append(to: s, expected: .exact(2), events: [event()])
        try expect(ok.streamVersion == 3, "version after exact(2) append is \(ok.streamVersion)")
    }

    static func streamExistsRefusesAnEmptyStream(_ store: any EventStore) async throws {
        let s = stream()
        try await expectConflict({ _ = try await store.append(to: s, expected: .streamExists, events: [event()]) }, actual: 0)
        _ = try await store.append(to: s, expected: .any, events: [event()])
        let ok = try await store.append(to: s, expected: .streamExists, events: [event()])
        try expect(ok.streamVersion == 2, "streamExists append reached \(ok.streamVersion)")
    }

    static func anyAppendsWhateverTheVersion(_ store: any EventStore) async throws {
        let s = stream()
        let a = try await store.append(to: s, expected: .any, events: [event()])
        let b = try await store.append(to: s, expected: .any, events: [event(), event()])
        try expect(a.streamVersion == 1 && b.streamVersion == 3, "any appends reached \(a.streamVersion), \(b.streamVersion)")
    }

    static func manyEventsGoInTogetherWithConsecutiveVersions(_ store: any EventStore) async throws {
        let s = stream()
        let result = try await store.append(to: s, expected: .noStream, events: (0..<50).map { event($0) })
        try expect(result.positions.count == 50, "\(result.positions.count) positions for 50 events")
        try expect(result.positions == result.positions.sorted(), "positions not increasing")
        let read = try await store.readStream(s, from: 1, direction: .forward, limit: 100)
        try expect(read.map(\.streamVersion) == Array(1...50), "versions not 1...50")
        try expect(Set(read.map(\.checkpoint.transactionID)).count == 1, "one append spans transactions")
        try expect(sameJSON(read.map(\.data), (0..<50).map { event($0).data }), "events out of order")
    }

    static func repeatedEventIDsAppendNothingAndReturnTheFirstResult(_ store: any EventStore) async throws {
        let s = stream()
        let events = [event(1), event(2)]
        let first = try await store.append(to: s, expected: .noStream, events: events)
        // The same command again, with the expected version it was sent with.
        let again = try await store.append(to: s, expected: .noStream, events: events)
        try expect(again.duplicate, "repeat not marked duplicate")
        try expect(again.positions == first.positions && again.streamVersion == first.streamVersion,
            "repeat reported \(again.positions), first wrote \(first.positions)")
        let anyAgain = try await store.append(to: s, expected: .any, events: events)
        try expect(anyAgain.duplicate && anyAgain.positions == first.positions, "repeat with .any appended")
        let version = try await store.streamVersion(s)
        try expect(version == 2, "stream grew to \(version)")
    }

    static func partlyRepeatedEventIDsAreAnIdempotencyMismatch(_ store: any EventStore) async throws {
        let s = stream()
        let reused = event(1)
        _ = try await store.append(to: s, expected: .noStream, events: [reused])
        do {
            _ = try await store.append(to: s, expected: .exact(1), events: [reused, event(2)])
            throw ContractFailure("a partly repeated batch was appended")
        } catch EventStoreError.idempotencyMismatch {}
        do {
            _ = try await store.append(to: stream(), expected: .noStream, events: [reused])
            throw ContractFailure("an event id from another stream was appended")
        } catch EventStoreError.idempotencyMismatch {}
    }

    static func readAllReturnsEverythingInCheckpointOrderAfterACheckpoint(_ store: any EventStore) async throws {
        let a = stream(), b = stream()
        _ = try await store.append(to: a, expected: .noStream, events: [event(1), event(2)])
        let middle = try await store.append(to: b, expected: .noStream, events: [event(3)])
        _ = try await store.append(to: a, expected: .exact(2), events: [event(4)])
        let all = try await readAllEventually(store, after: .start, count: 4)
        try expect(all.count == 4, "readAll returned \(all.count) of 4")
        try expect(zip(all, all.dropFirst()).allSatisfy { $0.checkpoint < $1.checkpoint }, "not in checkpoint order")
        let after = try await store.readAll(after: middle.checkpoint, limit: 100)
        try expect(sameJSON(after.map(\.data), [event(4).data]), "after the middle checkpoint read \(after.count) events")
        let paged = try await store.readAll(after: .start, limit: 3)
        let rest = try await store.readAll(after: paged.last!.checkpoint, limit: 3)
        try expect(paged.count == 3 && rest.count == 1, "paging read \(paged.count) then \(rest.count)")
    }

    /// A stream of one event, then a command's batch of two (versions 2 and 3).
    static func commandBatch(_ store: any EventStore) async throws -> (stream: String, events: [NewEvent], written: AppendResult) {
        let s = stream()
        let metadata = EventMetadata(commandID: "cmd-\(UUID())")
        let events = [event(1, metadata: metadata), event(2, metadata: metadata)]
        _ = try await store.append(to: s, expected: .noStream, events: [event(0)])
        return (s, events, try await store.append(to: s, expected: .exact(1), events: events))
    }

    static func priorAppendFindsTheWholeBatchOfACommand(_ store: any EventStore) async throws {
        let (_, events, written) = try await commandBatch(store)
        let prior = try await store.priorAppend(firstEventID: events[0].eventID)
        try expect(prior?.positions == written.positions, "prior append \(String(describing: prior?.positions)) != \(written.positions)")
        try expect(prior?.streamVersion == 3 && prior?.duplicate == true, "prior append wrong version or not duplicate")
        let none = try await store.priorAppend(firstEventID: UUID())
        try expect(none == nil, "found a prior append for an unknown id")
    }

    static func priorAppendAndStreamAnswerAsTheTwoReadsApart(_ store: any EventStore) async throws {
        let (s, events, written) = try await commandBatch(store)
        _ = try await store.append(to: s, expected: .exact(3), events: [event(3), event(4)])
        for (from, limit) in [(1, 500), (2, 2), (6, 10)] as [(Int64, Int)] {
            let both = try await store.priorAppendAndStream(firstEventID: events[0].eventID, stream: s, from: from, limit: limit)
            try expect(both.prior?.positions == written.positions, "prior append \(String(describing: both.prior?.positions)) != \(written.positions)")
            try expect(both.prior?.streamVersion == 3 && both.prior?.duplicate == true, "prior append wrong version or not duplicate")
            let read = try await store.readStream(s, from: from, direction: .forward, limit: limit)
            try expect(both.events.map(\.eventID) == read.map(\.eventID), "from \(from) limit \(limit) read \(both.events.map(\.streamVersion))")
        }
        let fresh = try await store.priorAppendAndStream(firstEventID: UUID(), stream: stream(), from: 1, limit: 500)
        try expect(fresh.prior == nil && fresh.events.isEmpty, "a new command on a new stream found \(fresh)")
        // The prior append of another stream's command is found whatever stream is read.
        let elsewhere = try await store.priorAppendAndStream(firstEventID: events[0].eventID, stream: stream(), from: 1, limit: 500)
        try expect(elsewhere.prior?.streamID == s && elsewhere.events.isEmpty, "another stream's command came back as \(elsewhere)")
    }

    static func metadataAndPayloadRoundTrip(_ store: any EventStore) async throws {
        let s = stream()
        let metadata = EventMetadata(correlationID: "corr", causationID: "cause", commandID: "cmd", userID: "user", tenantID: "tenant")
        let id = UUID()
        _ = try await store.append(to: s, expected: .noStream, events: [event(7, type: "Typed", id: id, metadata: metadata)])
        let read = try await store.readStream(s, from: 1, direction: .forward, limit: 1)
        try expect(read.first?.metadata == metadata, "metadata came back as \(String(describing: read.first?.metadata))")
        try expect(read.first?.eventID == id && read.first?.eventType == "Typed" && read.first?.schemaVersion == 1, "envelope differs")
        try expect(read.first?.streamID == s, "stream id differs")
        let json = try JSONDecoder().decode(JSONValue.self, from: read.first!.data)
        try expect(json == .object(["n": .number(7)]), "payload came back as \(json)")
    }

    static func streamVersionOfAMissingStreamIsZero(_ store: any EventStore) async throws {
        let version = try await store.streamVersion(stream())
        try expect(version == 0, "missing stream at version \(version)")
    }

    static func streamVersionsReadsSeveralStreamsAtOnce(_ store: any EventStore) async throws {
        let (one, two, missing) = (stream(), stream(), stream())
        _ = try await store.append(to: one, expected: .noStream, events: [event(1)])
        _ = try await store.append(to: two, expected: .noStream, events: [event(1), event(2), event(3)])
        let versions = try await store.streamVersions([one, two, missing])
        try expect(versions == [one: 1, two: 3, missing: 0], "versions \(versions)")
    }
}

public struct ContractFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
