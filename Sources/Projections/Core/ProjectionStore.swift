import Commands
import Events
import Foundation

/// What a projector runner needs from the place a read model lives. Adapters implement it for
/// Postgres (rows and checkpoint in one transaction) and Redis (one Lua script).
public protocol ProjectionStore: Sendable {
    associatedtype Writes: Sendable
    var projectorName: String { get }
    /// Events the live runner reads and applies per batch (one transaction). A Postgres batch's
    /// transaction holds back every reader of the log on its server while it is open, so a store
    /// whose batch costs a statement per event keeps it small.
    var batchSize: Int { get }
    /// Creates what the read model needs (tables, checkpoint row); safe to call again.
    func prepareStorage() async throws
    /// The checkpoint of the last applied event, as this store records it.
    func checkpoint() async throws -> Checkpoint
    /// The projection's writes for one event. Pure; throwing means the event cannot be applied.
    func writes(for event: RecordedEvent) throws -> Writes
    /// Applies a batch's steps atomically with moving the checkpoint from `after` (where the
    /// runner read from) to `through`, only while `epoch` is the lease's current one: throws
    /// `ProjectionError.fenced` otherwise, and `checkpointMoved` when the stored checkpoint is not
    /// `after` (e.g. a Redis that restarted empty), so the runner reloads it and replays.
    func apply(_ steps: [ProjectionStep<Writes>], after: Checkpoint, through: Checkpoint, epoch: Int64) async throws
    /// Work on a batch that depends on its events alone (a folded read model decodes them), done
    /// before `apply`, while the runner applies the batch before it. Nil: nothing to do ahead.
    func prepare(_ events: [RecordedEvent]) async -> (any Sendable)?
    /// `apply`, given what `prepare` made of the same batch (the steps are the batch's events, in
    /// order; `prepared` may be nil, or from a `prepare` that found nothing to do ahead).
    func apply(_ steps: [ProjectionStep<Writes>], prepared: (any Sendable)?, after: Checkpoint, through: Checkpoint, epoch: Int64) async throws
    /// Applies events released from parking (retried, or held behind one that was settled)
    /// without moving the checkpoint, and forgets their parked records.
    func applyReleased(_ events: [(RecordedEvent, Writes)], epoch: Int64) async throws
    /// Called by the lease holder before it applies anything: a store whose read model changed
    /// shape since it was built rebuilds it here. True if it did.
    func upgradeIfNeeded(events: any EventStore) async throws -> Bool
    /// Whether `error`, thrown by `apply`, means the store refused the writes for their data
    /// (a value out of range, a broken constraint): trying again cannot help, so the event at
    /// fault must be found and parked. Returns the reason to park it with; nil for other
    /// failures (the store unreachable, a lost lease), which the runner retries.
    func refusedData(_ error: any Error) -> String?
}

extension ProjectionStore {
    public var batchSize: Int { 500 }
    public func prepare(_ events: [RecordedEvent]) async -> (any Sendable)? { nil }
    public func apply(_ steps: [ProjectionStep<Writes>], prepared: (any Sendable)?, after: Checkpoint, through: Checkpoint, epoch: Int64) async throws {
        try await apply(steps, after: after, through: through, epoch: epoch)
    }
    public func upgradeIfNeeded(events: any EventStore) async throws -> Bool { false }
    public func refusedData(_ error: any Error) -> String? { nil }
}

/// What the runner decided for one event of a batch.
public enum ProjectionStep<Writes: Sendable>: Sendable {
    case apply(RecordedEvent, Writes)
    /// The projection failed `attempts` times with `error`: the event is parked.
    case park(RecordedEvent, error: String, attempts: Int)
    /// Its stream waits behind the parked event `behind`.
    case hold(RecordedEvent, behind: UUID)

    public var event: RecordedEvent {
        switch self {
        case .apply(let event, _), .park(let event, _, _), .hold(let event, _): event
        }
    }
}

/// The lease port: one holder per projector across every process.
public protocol LeaseProvider: Sendable {
    /// Runs `body` while holding `name`'s lease, passing the lease's fencing epoch; returns false
    /// at once if another process holds it. `body` is cancelled if the lease is lost.
    func withLease(_ name: String, _ body: @escaping @Sendable (Int64) async throws -> Void) async throws -> Bool
}

/// A parked event, as operators see and settle it.
public struct ParkedEvent: Sendable, Hashable, Codable {
    public enum Action: String, Sendable, Codable { case retry, skip }
    public var projector: String
    public var eventID: UUID
    public var streamID: String
    public var streamVersion: Int64
    public var checkpoint: Checkpoint
    public var error: String
    public var attempts: Int
    /// Nil for the event that failed; else the parked event this one waits behind.
    public var heldBehind: UUID?
    /// `parked`, `retry` or `skip`.
    public var status: String
    public var parkedAt: Date

    public init(
        projector: String, eventID: UUID, streamID: String, streamVersion: Int64, checkpoint: Checkpoint, error: String,
        attempts: Int, heldBehind: UUID?, status: String, parkedAt: Date
    ) {
        self.projector = projector
        self.eventID = eventID
        self.streamID = streamID
        self.streamVersion = streamVersion
        self.checkpoint = checkpoint
        self.error = error
        self.attempts = attempts
        self.heldBehind = heldBehind
        self.status = status
        self.parkedAt = parkedAt
    }
}

/// Parked events: listed and settled by operators, worked off by the lease holder.
public protocol ParkedEventStore: Sendable {
    func parked(projector: String?) async throws -> [ParkedEvent]
    /// Asks the lease holder to retry the event or to skip it; false if no such parked event.
    func request(_ action: ParkedEvent.Action, projector: String, eventID: UUID) async throws -> Bool
    /// Streams held back for a projector, each with the parked event it waits behind.
    func heldStreams(projector: String) async throws -> [String: UUID]
    /// Poison events (not held ones) an operator asked to retry or skip, oldest first.
    func requested(projector: String) async throws -> [ParkedEvent]
    /// The events held behind `eventID`, in stream order.
    func heldBehind(projector: String, eventID: UUID) async throws -> [ParkedEvent]
    /// Makes `eventID` the failing event again with `error` (a retry that failed), and re-points
    /// what `previous` held to it.
    func repark(projector: String, eventID: UUID, error: String, previous: UUID) async throws
    /// Forgets a parked event (skipped, or applied some other way).
    func forget(projector: String, eventIDs: [UUID]) async throws
}

public enum ProjectionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Another process holds the lease now; this one must stop writing.
    case fenced(projector: String)
    /// The store's checkpoint is not where this runner read from: reload it and go on from there.
    case checkpointMoved(projector: String)

    public var description: String {
        switch self {
        case .fenced(let name): "projector \(name) lost its lease"
        case .checkpointMoved(let name): "projector \(name)'s stored checkpoint moved; reloading it"
        }
    }
}
