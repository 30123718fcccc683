import Foundation

/// A cross-process doorbell (Redis pub/sub in production): a process rings it after it commits,
/// and every process hears the ring. A ring is a hint that carries no event, so a lost one costs
/// latency, never an event: readers read the events from the log.
public protocol Doorbell: Sendable {
    func ring(_ payload: String) async
    /// Calls `handler` with each ring's payload heard, this process's own included.
    func onRing(_ handler: @escaping @Sendable (String) -> Void)
}

/// A commit's ring, `log <stream> <version>`: written and read only here.
public enum CommitRing {
    public static let prefix = "log "

    public static func payload(stream: String, version: Int64) -> String { "\(prefix)\(stream) \(version)" }

    /// The stream and version of a commit's ring; nil for any other ring.
    public static func parse(_ payload: String) -> (stream: String, version: Int64)? {
        guard payload.hasPrefix(prefix) else { return nil }
        let parts = payload.dropFirst(prefix.count).split(separator: " ")
        guard parts.count == 2, let version = Int64(parts[1]) else { return nil }
        return (String(parts[0]), version)
    }
}

extension Doorbell {
    /// Rings for a commit (nothing for a repeated command, which appended nothing).
    public func ring(commit append: AppendResult?) async {
        guard let append, !append.duplicate else { return }
        await ring(CommitRing.payload(stream: append.streamID, version: append.streamVersion))
    }
}

/// Who is looking at a workflow, with a time to live: an entry not refreshed within its TTL is
/// gone (a crashed process leaves nobody behind for longer than that).
public protocol PresenceStore: Sendable {
    func put(_ key: String, member: String, value: String, ttl: Duration) async throws
    func remove(_ key: String, member: String) async throws
    /// The live entries (expired ones are dropped).
    func entries(_ key: String) async throws -> [String: String]
}
