import Events
import Foundation
import Synchronization

/// Folded states of small, often-read streams, kept in memory and checked against the stream's
/// current version on every read: a read costs one version query, and folds only when the stream
/// moved. It can never serve a state older than the stream's version at the time of the read
/// (the check is the store's own), which is what a cache of "where does a label point" must
/// guarantee. Bounded: past `capacity` streams it starts over.
public final class StreamStateCache<D: Decider>: Sendable {
    public let handler: CommandHandler<D>
    private let entries: Mutex<[String: (version: Int64, state: D.State)]> = Mutex([:])
    private let capacity: Int

    public init(handler: CommandHandler<D>, capacity: Int = 4096) {
        self.handler = handler
        self.capacity = max(1, capacity)
    }

    /// The stream's state at its current version.
    public func load(_ stream: String) async throws -> (D.State, Int64) {
        try await load(stream, current: try await handler.store.streamVersion(stream))
    }

    /// The stream's state, its current version known (just read from the store).
    public func load(_ stream: String, current version: Int64) async throws -> (D.State, Int64) {
        if let cached = entries.withLock({ $0[stream] }), cached.version == version { return (cached.state, version) }
        let (state, loaded) = try await handler.load(stream)
        entries.withLock { entries in
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            if (entries[stream]?.version ?? -1) < loaded { entries[stream] = (loaded, state) }
        }
        return (state, loaded)
    }
}
