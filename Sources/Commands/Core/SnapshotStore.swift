import Foundation

/// A decider's state as of a stream version, encoded.
public struct Snapshot: Sendable, Hashable {
    public var streamID: String
    public var streamVersion: Int64
    public var stateVersion: Int
    public var data: Data

    public init(streamID: String, streamVersion: Int64, stateVersion: Int, data: Data) {
        self.streamID = streamID
        self.streamVersion = streamVersion
        self.stateVersion = stateVersion
        self.data = data
    }
}

/// The snapshot port. Snapshots are an optimisation only: losing them loses nothing.
public protocol SnapshotStore: Sendable {
    func latest(_ streamID: String) async throws -> Snapshot?
    func save(_ snapshot: Snapshot) async throws
}

/// When to take a snapshot: every `every` events of a stream of the given categories.
public struct SnapshotPolicy: Sendable {
    public var every: [String: Int64]

    public init(every: [String: Int64] = [:]) {
        self.every = every
    }

    public static let never = SnapshotPolicy()

    /// The interval of the stream's category (the stream id's prefix before `-`), if it has one:
    /// no stream shorter than this has a snapshot under this policy.
    public func interval(of stream: String) -> Int? {
        var shortest: Int64?
        for (category, interval) in every where interval > 0 && stream.hasPrefix(category + "-") {
            shortest = min(shortest ?? interval, interval)
        }
        return shortest.map { Int(min($0, Int64(Int.max))) }
    }

    /// True when the append moved the stream across a multiple of the category's interval.
    public func shouldSnapshot(category: String, from oldVersion: Int64, to newVersion: Int64) -> Bool {
        guard let interval = every[category], interval > 0 else { return false }
        return newVersion / interval > oldVersion / interval
    }
}
