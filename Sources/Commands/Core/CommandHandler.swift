import Events
import Foundation
import Synchronization

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
    /// Folded states kept between commands: a load folds only the events after the kept one.
    public let memo: StateMemo<D>?
    /// Commands on one stream in this process, one at a time: on a hot stream (a workflow many
    /// people edit) they queue here instead of conflicting in the store and retrying.
    public let gate: StreamGate?

    public init(
        store: any EventStore, registry: EventRegistry = D.Event.registry, snapshots: (any SnapshotStore)? = nil,
        policy: SnapshotPolicy = .never, maxAttempts: Int = 5, memo: StateMemo<D>? = nil, gate: StreamGate? = nil
    ) {
        self.gate = gate
        self.store = store
        self.registry = registry
        self.snapshots = snapshots
        self.policy = policy
        self.maxAttempts = max(1, maxAttempts)
        self.memo = memo
    }

    /// - Parameter ifMatch: the version the caller last saw (`If-Match`); a mismatch is not retried.
    public func handle(
        _ command: D.Command, on streamID: StreamID, context: CommandContext, ifMatch: Int64? = nil
    ) async throws -> CommandResult<D.State> {
        guard let gate else { return try await decideAndAppend(command, on: streamID, context: context, ifMatch: ifMatch) }
        return try await gate.run(streamID.description) {
            try await decideAndAppend(command, on: streamID, context: context, ifMatch: ifMatch)
        }
    }

    private func decideAndAppend(
        _ command: D.Command, on streamID: StreamID, context: CommandContext, ifMatch: Int64?
    ) async throws -> CommandResult<D.State> {
        let stream = streamID.description
        // The repeat check and the load's first read share one round trip where the load knows
        // its first read before it starts (every load but one from a snapshot it must ask for).
        let start = start(of: stream)
        var first: [RecordedEvent]?
        if let read = firstRead(from: start) {
            let (prior, page) = try await store.priorAppendAndStream(firstEventID: context.eventID(0), stream: stream, from: read.0, limit: read.1)
            if let prior { return try await earlierResult(prior, on: stream) }
            first = page
        } else if let earlier = try await earlierResult(of: context, on: stream) {
            return earlier
        }
        for attempt in 1...maxAttempts {
            let (state, version) = attempt == 1 ? try await load(stream, from: start, first: first) : try await load(stream)
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
                    memo?.keep(newState, at: result.streamVersion, of: stream)
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
        return try await earlierResult(prior, on: stream)
    }

    private func earlierResult(_ prior: AppendResult, on stream: String) async throws -> CommandResult<D.State> {
        guard prior.streamID == stream else { throw CommandHandlerError.idempotencyKeyReused }
        let (state, version) = try await load(stream)
        return CommandResult(state: state, streamVersion: version, append: prior)
    }

    /// Where a load starts.
    enum Start {
        /// The state this process kept at a version: read what came after it.
        case kept(D.State, Int64)
        /// The stream's first `interval` events, read whole when there are fewer: under the policy
        /// such a stream has no snapshot, so only a longer one asks for it.
        case probe(interval: Int)
        /// The latest usable snapshot, if any (a store of them, but no interval for the stream).
        case snapshot
        /// The first event.
        case beginning
    }

    static var pageSize: Int { 500 }

    func start(of stream: String) -> Start {
        if let kept = memo?.kept(stream) { return .kept(kept.0, kept.1) }
        guard snapshots != nil else { return .beginning }
        if let interval = policy.interval(of: stream) { return .probe(interval: interval) }
        return .snapshot
    }

    /// The load's first read (from version, limit), if it is known before the load starts.
    func firstRead(from start: Start) -> (Int64, Int)? {
        switch start {
        case .kept(_, let version): (version + 1, Self.pageSize)
        case .probe(let interval): (1, interval)
        case .snapshot: nil
        case .beginning: (1, Self.pageSize)
        }
    }

    /// The state of a stream and its version, starting from the latest usable snapshot.
    public func load(_ stream: String) async throws -> (D.State, Int64) {
        try await load(stream, from: start(of: stream), first: nil)
    }

    /// - Parameter first: the result of `firstRead(from: start)`, when the caller made it.
    private func load(_ stream: String, from start: Start, first: [RecordedEvent]?) async throws -> (D.State, Int64) {
        var state = D.initialState
        var version: Int64 = 0
        var base: Int64 = 0
        var first = first
        func read(from version: Int64, limit: Int) async throws -> [RecordedEvent] {
            if let page = first {
                first = nil
                return page
            }
            return try await store.readStream(stream, from: version, direction: .forward, limit: limit)
        }
        switch start {
        case .kept(let kept, let at):
            (state, version, base) = (kept, at, at)
        case .probe(let interval):
            let probe = try await read(from: 1, limit: interval)
            if probe.count == interval, let restored = try await restoreSnapshot(stream), restored.1 > (probe.last?.streamVersion ?? 0) {
                (state, version) = restored
                base = version
            } else {
                (state, version) = try fold(probe, into: (state, version))
                if probe.count < interval {
                    if version > 0 { memo?.keep(state, at: version, of: stream) }
                    return (state, version)
                }
            }
        case .snapshot:
            if let restored = try await restoreSnapshot(stream) {
                (state, version) = restored
                base = version
            }
        case .beginning:
            break
        }
        while true {
            let page = try await read(from: version + 1, limit: Self.pageSize)
            (state, version) = try fold(page, into: (state, version))
            if page.count < Self.pageSize {
                if version > base { memo?.keep(state, at: version, of: stream) }
                return (state, version)
            }
        }
    }

    private func fold(_ events: [RecordedEvent], into folded: (D.State, Int64)) throws -> (D.State, Int64) {
        var (state, version) = folded
        for recorded in events {
            state = D.evolve(state, try registry.decode(recorded, as: D.Event.self))
            version = recorded.streamVersion
        }
        return (state, version)
    }

    /// The state of a stream as of `version` (time travel): folded from its first event, never
    /// from a kept state or a snapshot, which may be past it.
    public func load(_ stream: String, asOf target: Int64) async throws -> (D.State, Int64) {
        var state = D.initialState
        var version: Int64 = 0
        let pageSize = 500
        while version < target {
            let page = try await store.readStream(stream, from: version + 1, direction: .forward, limit: min(pageSize, Int(target - version)))
            for recorded in page where recorded.streamVersion <= target {
                state = D.evolve(state, try registry.decode(recorded, as: D.Event.self))
                version = recorded.streamVersion
            }
            if page.count < pageSize { break }
        }
        return (state, version)
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

/// Folded states of streams, kept in memory between commands so a long stream (a workflow edited
/// op by op) is folded once, then only forward from where it was kept. A kept state is always the
/// fold of the stream's first `version` events, so it can be old but never wrong: every load reads
/// the events after it from the store. Bounded: past `capacity` streams it starts over.
public final class StateMemo<D: Decider>: Sendable {
    private let entries: Mutex<[String: (version: Int64, state: D.State)]> = Mutex([:])
    private let capacity: Int

    public init(capacity: Int = 1024) { self.capacity = max(1, capacity) }

    public func kept(_ stream: String) -> (D.State, Int64)? {
        entries.withLock { $0[stream].map { ($0.state, $0.version) } }
    }

    /// Keeps `state` unless a newer one is kept.
    public func keep(_ state: D.State, at version: Int64, of stream: String) {
        entries.withLock { entries in
            if (entries[stream]?.version ?? -1) >= version { return }
            if entries[stream] == nil, entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[stream] = (version, state)
        }
    }
}

/// One holder per key at a time, the others queued in arrival order (an async mutex per stream).
public final class StreamGate: Sendable {
    private let held = Mutex<[String: [CheckedContinuation<Void, Never>]]>([:])

    public init() {}

    public func run<T>(_ key: String, _ body: () async throws -> T) async throws -> T {
        await acquire(key)
        defer { release(key) }
        return try await body()
    }

    private func acquire(_ key: String) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = held.withLock { held -> Bool in
                guard held[key] != nil else {
                    held[key] = []
                    return true
                }
                held[key]!.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    private func release(_ key: String) {
        let next = held.withLock { held -> CheckedContinuation<Void, Never>? in
            guard var waiting = held[key], !waiting.isEmpty else {
                held[key] = nil
                return nil
            }
            let next = waiting.removeFirst()
            held[key] = waiting
            return next
        }
        next?.resume()
    }
}
