import Adapters
import Events
import Foundation
import Projections
import ServiceLifecycle

/// A projection a module declares: what it is and where its read model lives.
public enum ProjectionDeclaration: Sendable {
    case postgres(any PostgresProjection)
    case redis(any RedisProjection)

    public var name: String {
        switch self {
        case .postgres(let projection): projection.name
        case .redis(let projection): projection.name
        }
    }
}

/// A declared projection bound to this process's platform: its runner, its checkpoint and its
/// rebuild, whatever its store. `chronicle serve`, `projections list` and `projections rebuild`
/// all go through these, so a projection a manifest declares is run, listed and rebuildable.
public struct Projector: Sendable {
    public enum Store: String, Sendable { case postgres, redis }

    public let name: String
    public let store: Store
    /// What a rebuild swaps: the Postgres tables (behind their views), or the Redis key prefix
    /// it clears.
    public let swaps: [String]
    let makeRunner: @Sendable () -> any Service
    let readCheckpoint: @Sendable () async throws -> Checkpoint
    let runRebuild: @Sendable (@escaping @Sendable (RebuildProgress) -> Void) async throws -> (generation: Int, events: Int)

    public func runner() -> any Service { makeRunner() }
    public func checkpoint() async throws -> Checkpoint { try await readCheckpoint() }

    /// Postgres: builds a shadow generation and swaps it in (reads see the old one until then).
    /// Redis: clears the cache and replays it (reads fall back to Postgres meanwhile).
    public func rebuild(progress: @escaping @Sendable (RebuildProgress) -> Void = { _ in }) async throws -> (generation: Int, events: Int) {
        try await runRebuild(progress)
    }
}

extension Platform {
    public func projector(_ declaration: ProjectionDeclaration) -> Projector {
        switch declaration {
        case .postgres(let projection): postgresProjector(projection)
        case .redis(let projection): redisProjector(projection)
        }
    }

    func postgresProjector<P: PostgresProjection>(_ projection: P) -> Projector {
        let store = postgres(projection)
        let events = database.eventStore
        return Projector(
            name: projection.name, store: .postgres, swaps: projection.tables.map(\.name), makeRunner: { runner(store) },
            readCheckpoint: { try await store.checkpoint() }, runRebuild: { try await store.rebuild(events: events, progress: $0) })
    }

    func redisProjector<P: RedisProjection>(_ projection: P) -> Projector {
        let store = redis(projection)
        let events = database.eventStore
        return Projector(
            name: projection.name, store: .redis, swaps: [store.prefix + "*"], makeRunner: { runner(store) },
            readCheckpoint: { try await store.checkpoint() }, runRebuild: { try await store.rebuild(events: events, progress: $0) })
    }
}
