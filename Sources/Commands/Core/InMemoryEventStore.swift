import Events
import Foundation

/// The event store in memory, for decider and unit tests. Each append is one "transaction" with
/// its own id, so checkpoints look like the Postgres store's. Passes the same contract suite.
public actor InMemoryEventStore: EventStore, HeadProbe, CorrelationReader {
    private var log: [RecordedEvent] = []
    private var streams: [String: [Int]] = [:]
    private var byEventID: [UUID: Int] = [:]
    private var lastTransaction: UInt64 = 0
    public nonisolated let signal = AppendSignal()

    public init() {}

    public func append(to streamID: String, expected: ExpectedVersion, events: [NewEvent]) throws -> AppendResult {
        precondition(!events.isEmpty, "append needs at least one event")
        if let prior = try priorResult(of: events.map(\.eventID), stream: streamID) { return prior }
        let current = Int64(streams[streamID]?.count ?? 0)
        guard expected.accepts(current: current) else {
            throw EventStoreError.versionConflict(streamID: streamID, expected: expected, actual: current)
        }
        lastTransaction += 1
        let now = Date()
        for (offset, event) in events.enumerated() {
            let recorded = RecordedEvent(
                streamID: streamID, streamVersion: current + Int64(offset) + 1,
                checkpoint: Checkpoint(transactionID: lastTransaction, position: Int64(log.count) + 1),
                eventID: event.eventID, eventType: event.eventType, schemaVersion: event.schemaVersion,
                data: event.data, metadata: event.metadata, recordedAt: now)
            streams[streamID, default: []].append(log.count)
            byEventID[event.eventID] = log.count
            log.append(recorded)
        }
        signal.signal()
        let written = log.suffix(events.count)
        return AppendResult(
            streamID: streamID, streamVersion: written.last!.streamVersion, checkpoint: written.last!.checkpoint,
            positions: written.map(\.position), duplicate: false)
    }

    public func readStream(_ streamID: String, from version: Int64, direction: ReadDirection, limit: Int) -> [RecordedEvent] {
        let indices = streams[streamID] ?? []
        switch direction {
        case .forward:
            return indices.lazy.map { self.log[$0] }.filter { $0.streamVersion >= version }.prefix(limit).map { $0 }
        case .backward:
            return indices.reversed().lazy.map { self.log[$0] }.filter { $0.streamVersion <= version }.prefix(limit).map { $0 }
        }
    }

    public func readAll(after checkpoint: Checkpoint, limit: Int) -> [RecordedEvent] {
        // Positions here are dense and ordered with transactions, so the index is position - 1.
        let start = log.firstIndex { $0.checkpoint > checkpoint } ?? log.count
        return Array(log[start..<min(log.count, start + limit)])
    }

    public func head() -> Checkpoint { log.last?.checkpoint ?? .start }

    public func correlated(_ correlationID: String, after position: Int64, limit: Int) -> [RecordedEvent] {
        Array(log.lazy.filter { $0.position > position && $0.metadata.correlationID == correlationID }.prefix(limit))
    }

    public func priorAppend(firstEventID: UUID) -> AppendResult? {
        guard let index = byEventID[firstEventID] else { return nil }
        let first = log[index]
        let batch = log[index...].prefix { $0.checkpoint.transactionID == first.checkpoint.transactionID }
        return AppendResult(
            streamID: first.streamID, streamVersion: batch.last!.streamVersion, checkpoint: batch.last!.checkpoint,
            positions: batch.map(\.position), duplicate: true)
    }

    public func streamVersion(_ streamID: String) -> Int64 {
        Int64(streams[streamID]?.count ?? 0)
    }

    /// Every event, in order: for tests.
    public var allEvents: [RecordedEvent] { log }

    private func priorResult(of ids: [UUID], stream: String) throws -> AppendResult? {
        let found = ids.compactMap { byEventID[$0] }
        if found.isEmpty { return nil }
        guard found.count == ids.count, found.allSatisfy({ log[$0].streamID == stream }) else {
            throw EventStoreError.idempotencyMismatch(streamID: stream)
        }
        let events = found.map { log[$0] }
        return AppendResult(
            streamID: stream, streamVersion: events.last!.streamVersion, checkpoint: events.last!.checkpoint,
            positions: events.map(\.position), duplicate: true)
    }
}

/// Snapshots in memory, for tests.
public actor InMemorySnapshotStore: SnapshotStore {
    private var snapshots: [String: Snapshot] = [:]

    public init() {}

    public func latest(_ streamID: String) -> Snapshot? { snapshots[streamID] }

    public func save(_ snapshot: Snapshot) {
        if let existing = snapshots[snapshot.streamID], existing.streamVersion >= snapshot.streamVersion { return }
        snapshots[snapshot.streamID] = snapshot
    }
}
