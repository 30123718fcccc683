import Events
import Foundation

/// The version a stream must be at for an append to go ahead.
public enum ExpectedVersion: Sendable, Hashable, CustomStringConvertible {
    /// Append whatever the stream's version.
    case any
    /// The stream must not exist yet.
    case noStream
    /// The stream must exist.
    case streamExists
    /// The stream's last event must have this version (0 means no stream).
    case exact(Int64)

    public var description: String {
        switch self {
        case .any: "any"
        case .noStream: "no stream"
        case .streamExists: "stream exists"
        case .exact(let version): "\(version)"
        }
    }
}

/// What an append wrote, or, for a repeated command, what the first one wrote.
public struct AppendResult: Sendable, Hashable {
    public var streamID: String
    /// The stream's version after the append (its last event's version).
    public var streamVersion: Int64
    /// The checkpoint of the last event written: a query may wait until a read model passes it.
    public var checkpoint: Checkpoint
    /// The events' global positions, in order.
    public var positions: [Int64]
    /// True when every event was already stored: the command had been applied before.
    public var duplicate: Bool

    public init(streamID: String, streamVersion: Int64, checkpoint: Checkpoint, positions: [Int64], duplicate: Bool) {
        self.streamID = streamID
        self.streamVersion = streamVersion
        self.checkpoint = checkpoint
        self.positions = positions
        self.duplicate = duplicate
    }
}

public enum ReadDirection: Sendable {
    case forward, backward
}

/// The event store port. Adapters: `InMemoryEventStore` here, `PostgresEventStore` in Adapters;
/// one contract test suite runs against both.
public protocol EventStore: Sendable {
    /// Appends all events or none. Throws `EventStoreError.versionConflict` when the stream is
    /// not at `expected`. If every event id is already stored (a repeated command), appends nothing
    /// and returns the earlier result with `duplicate == true`.
    func append(to streamID: String, expected: ExpectedVersion, events: [NewEvent]) async throws -> AppendResult

    /// Events of one stream starting at `version` (inclusive), forward or backward.
    func readStream(_ streamID: String, from version: Int64, direction: ReadDirection, limit: Int) async throws -> [RecordedEvent]

    /// Events of every stream strictly after `checkpoint`, in checkpoint order, only from
    /// transactions that can no longer be overtaken by one still open. Never skips, never repeats.
    func readAll(after checkpoint: Checkpoint, limit: Int) async throws -> [RecordedEvent]

    /// What the command whose first event id is `firstEventID` appended earlier, if it did.
    func priorAppend(firstEventID: UUID) async throws -> AppendResult?

    /// The current version of a stream; 0 if it has no events.
    func streamVersion(_ streamID: String) async throws -> Int64

    /// The current versions of several streams at once (0 for one with no events).
    func streamVersions(_ streamIDs: [String]) async throws -> [String: Int64]

    /// A command's two reads before it decides, in one: what it appended before (as
    /// `priorAppend`) and the stream's events from `version` on, at most `limit` (as a forward
    /// `readStream`).
    func priorAppendAndStream(firstEventID: UUID, stream: String, from version: Int64, limit: Int) async throws
        -> (prior: AppendResult?, events: [RecordedEvent])
}

extension EventStore {
    /// The two reads one after the other; a store that can ask once overrides it.
    public func priorAppendAndStream(firstEventID: UUID, stream: String, from version: Int64, limit: Int) async throws
        -> (prior: AppendResult?, events: [RecordedEvent])
    {
        let prior = try await priorAppend(firstEventID: firstEventID)
        return (prior, try await readStream(stream, from: version, direction: .forward, limit: limit))
    }

    /// One `streamVersion` each; a store that can ask once overrides it.
    public func streamVersions(_ streamIDs: [String]) async throws -> [String: Int64] {
        var versions: [String: Int64] = [:]
        for stream in streamIDs { versions[stream] = try await streamVersion(stream) }
        return versions
    }
}

/// Errors of the event store port. `versionConflict` and `idempotencyMismatch` are expected
/// outcomes callers handle; `unavailable` is an infrastructure fault whose text leaks nothing.
public enum EventStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    case versionConflict(streamID: String, expected: ExpectedVersion, actual: Int64)
    /// Some but not all of the event ids were stored before, or stored in another stream: the
    /// same command id was reused for a different command.
    case idempotencyMismatch(streamID: String)
    case unavailable(String)
    /// The store refused the events' data itself (a value out of its range, a document over its
    /// size): the same append will never succeed, so a worker records a failure instead of
    /// retrying the work.
    case refused(String)

    public var description: String {
        switch self {
        case .versionConflict(let stream, let expected, let actual):
            "version conflict on \(stream): expected \(expected), stream is at \(actual)"
        case .idempotencyMismatch(let stream):
            "command id reused for a different command on \(stream)"
        case .unavailable(let reason): "event store unavailable: \(reason)"
        case .refused(let reason): "the event store refused the data: \(reason)"
        }
    }
}

extension ExpectedVersion {
    /// Whether a stream at `current` satisfies this expectation.
    public func accepts(current: Int64) -> Bool {
        switch self {
        case .any: true
        case .noStream: current == 0
        case .streamExists: current > 0
        case .exact(let version): current == version
        }
    }
}

/// Optional: stores whose readers can be held back by open transactions say so, for the
/// `chronicle_eventstore_reader_held_back_seconds` metric.
public protocol HoldBackProbe: Sendable {
    /// True when committed events after `checkpoint` wait behind a transaction still open.
    func heldBack(after checkpoint: Checkpoint) async throws -> Bool
    /// The open transactions that hold readers back, oldest first, each described for an
    /// operator (process id, database, client, state, age): what a warning names.
    func holdingBack() async throws -> [String]
}

/// Optional: stores that can count what lies after a checkpoint, for lag metrics.
public protocol LagProbe: Sendable {
    /// Events after `checkpoint` in the read order, counted up to `cap`.
    func eventsAfter(_ checkpoint: Checkpoint, cap: Int) async throws -> Int
}

/// Optional: stores that can say where the readable log ends, so a live follower can start there
/// instead of replaying history.
public protocol HeadProbe: Sendable {
    /// The checkpoint of the newest event a reader may see now; `.start` for an empty store.
    func head() async throws -> Checkpoint
}

/// Optional: stores that can find every event of one correlation id (what one request caused,
/// across streams), in global position order.
public protocol CorrelationReader: Sendable {
    /// Events whose metadata carries `correlationID`, after global position `position`.
    func correlated(_ correlationID: String, after position: Int64, limit: Int) async throws -> [RecordedEvent]
}
