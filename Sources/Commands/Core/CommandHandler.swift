import Events
import Foundation

/// What a handled command wrote: the state after it and where its events landed.
public struct CommandResult<State: Sendable>: Sendable {
    public var state: State
    public var streamVersion: Int64
    /// Nil when the command decided no events and nothing was ever written for it.
    public var append: AppendResult?

    /// True when the command had been applied before and nothing new was written.
    public var duplicate: Bool { append?.duplicate ?? false }
}

/// Why the handler did not apply a command, beside `DomainError` and infrastructure faults.
public enum CommandHandlerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The caller's `If-Match` version is not the stream's (412).
    case preconditionFailed(expected: Int64, actual: Int64)
    /// Other writers kept changing the stream; retried `attempts` times (409).
    case concurrencyConflict(streamID: String, attempts: Int)
    /// The idempotency key was used before for a different command (422).
    case idempotencyKeyReused

    public var description: String {
        switch self {
        case .preconditionFailed(let expected, let actual): "expected version \(expected), but it is \(actual)"
        case .concurrencyConflict(let stream, let attempts): "\(stream) kept changing; gave up after \(attempts) attempts"
        case .idempotencyKeyReused: "the idempotency key was already used for a different command"
        }
    }
}

/// Loads a stream (from a snapshot where one exists), decides, appends with the expected version,
/// and on a version conflict reloads and decides again, a bounded number of times.
public struct CommandHandler<D: Decider>: Sendable {
    public let store: any EventStore
    public let registry: EventRegistry
    public let snapshots: (any SnapshotStore)?
    public let policy: SnapshotPolicy
    public let maxAttempts: Int

    public init(
        store: any EventStore, registry: EventRegistry = D.Event.registry, snapshots: (any SnapshotStore)? = nil,
        policy: SnapshotPolicy = .never, maxAttempts: Int = 5
    ) {
        self.store = store
        self.registry = registry
        self.snapshots = snapshots
        self.policy = policy
        self.maxAttempts = max(1, maxAttempts)
    }

    /// - Parameter ifMatch: the version the caller last saw (`If-Match`); a mismatch is not retried.
    public func handle(
        _ command: D.Command, on streamID: StreamID, context: CommandContext, ifMatch: Int64? = nil
    ) async throws -> CommandResult<D.State> {
        let stream = streamID.description
        if let earlier = try await earlierResult(of: context, on: stream) { return earlier }
        for _ in 1...maxAttempts {
            let (state, version) = try await load(stream)
            if let ifMatch, ifMatch != version {
                throw CommandHandlerError.preconditionFailed(expected: ifMatch, actual: version)
            }
            let decided: [D.Event]
            do {
                decided = try D.decide(command, state: state)
            } catch let error as DomainError {
                // A concurrent copy of this same command may have landed since the first check,
                // and deciding on its outcome fails (e.g. "already exists"): answer as a repeat.
                if let earlier = try await earlierResult(of: context, on: stream) { return earlier }
                throw error
            }
            guard !decided.isEmpty else { return CommandResult(state: state, streamVersion: version, append: nil) }
            let metadata = context.metadata
            let events = try decided.enumerated().map { index, event in
                try NewEvent(payload: event.payload, id: context.eventID(index), metadata: metadata)
            }
            do {
                let result = try await store.append(to: stream, expected: .exact(version), events: events)
                let newState = D.fold(decided, from: state)
                if !result.duplicate {
                    await snapshotIfDue(stream: streamID, state: newState, from: version, to: result.streamVersion)
                }
                return CommandResult(state: newState, streamVersion: result.streamVersion, append: result)
            } catch EventStoreError.versionConflict {
                if ifMatch != nil {
                    let actual = try await store.streamVersion(stream)
                    throw CommandHandlerError.preconditionFailed(expected: version, actual: actual)
                }
                continue
            } catch EventStoreError.idempotencyMismatch {
                throw CommandHandlerError.idempotencyKeyReused
            }
        }
        throw CommandHandlerError.concurrencyConflict(streamID: stream, attempts: maxAttempts)
    }

    /// What this command appended before, if it did: a repeat appends nothing and gets this.
    private func earlierResult(of context: CommandContext, on stream: String) async throws -> CommandResult<D.State>? {
        guard let prior = try await store.priorAppend(firstEventID: context.eventID(0)) else { return nil }
        guard prior.streamID == stream else { throw CommandHandlerError.idempotencyKeyReused }
        let (state, version) = try await load(stream)
        return CommandResult(state: state, streamVersion: version, append: prior)
    }

    /// The state of a stream and its version, starting from the latest usable snapshot.
    public func load(_ stream: String) async throws -> (D.State, Int64) {
        var state = D.initialState
        var version: Int64 = 0
        if let restored = try await restoreSnapshot(stream) {
            (state, version) = restored
        }
        let pageSize = 500
        while true {
            let page = try await store.readStream(stream, from: version + 1, direction: .forward, limit: pageSize)
            for recorded in page {
                state = D.evolve(state, try registry.decode(recorded, as: D.Event.self))
                version = recorded.streamVersion
            }
            if page.count < pageSize { return (state, version) }
        }
    }

    private func restoreSnapshot(_ stream: String) async throws -> (D.State, Int64)? {
        guard let snapshots, let decider = D.self as? any SnapshottingDecider.Type else { return nil }
        guard let snapshot = try? await snapshots.latest(stream), snapshot.stateVersion == decider.stateVersion,
            let state = try? Self.decodeState(snapshot.data)
        else { return nil }
        return (state, snapshot.streamVersion)
    }

    private func snapshotIfDue(stream: StreamID, state: D.State, from old: Int64, to new: Int64) async {
        guard let snapshots, let decider = D.self as? any SnapshottingDecider.Type,
            policy.shouldSnapshot(category: stream.category, from: old, to: new),
            let encodable = state as? any Encodable,
            let data = try? EventCoding.encode(encodable)
        else { return }
        // A snapshot that fails to save costs only load time later; the command succeeded.
        try? await snapshots.save(Snapshot(streamID: stream.description, streamVersion: new, stateVersion: decider.stateVersion, data: data))
    }

    private static func decodeState(_ data: Data) throws -> D.State? {
        guard let decodable = D.State.self as? any Decodable.Type else { return nil }
        return try EventCoding.decode(decodable, from: data) as? D.State
    }
}

extension NewEvent {
    /// Encodes an untyped payload (opened to its concrete type) under its registered name.
    public init(payload: any DomainEvent, id: UUID, metadata: EventMetadata) throws {
        self = try Self.make(payload, id: id, metadata: metadata)
    }

    private static func make<E: DomainEvent>(_ event: E, id: UUID, metadata: EventMetadata) throws -> NewEvent {
        try NewEvent(event, id: id, metadata: metadata)
    }
}
