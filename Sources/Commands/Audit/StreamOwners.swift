import Events
import Foundation
import Synchronization

/// Who owns a stream, known from the log itself, never from a read model: the `owner_id` of the
/// stream's first event (agents, runs, sandbox runs, personas, validations), the persona's owner
/// for its release stream, and the user for their own stream. A stream with no owner in its
/// events (nothing a member owns) is an admin's to read. Owners never change, so each is looked up
/// once per process (up to `capacity` streams, then the memory starts over).
public final class StreamOwners: Sendable {
    let store: any EventStore
    private let known: Mutex<[String: String?]> = Mutex([:])
    private let capacity: Int

    public init(store: any EventStore, capacity: Int = 65_536) {
        self.store = store
        self.capacity = max(1, capacity)
    }

    /// Streams whose owner is another stream's: `personarelease-<id>` is `persona-<id>`'s.
    static let ownedThrough: [String: String] = ["personarelease": "persona"]

    /// The owner's user id; nil for a stream with no owner or no events.
    public func owner(of stream: String) async throws -> String? {
        if let cached = known.withLock({ $0[stream] }) { return cached }
        guard let first = try await store.readStream(stream, from: 1, direction: .forward, limit: 1).first else { return nil }
        let id = StreamID(stream)
        var owner: String?
        if let id, let parent = Self.ownedThrough[id.category] {
            owner = try await self.owner(of: "\(parent)-\(id.id)")
        } else if let id, id.category == "user" {
            owner = id.id
        } else if case .object(let members)? = try? EventCoding.decode(JSONValue.self, from: first.data), case .string(let found)? = members["owner_id"] {
            owner = found
        }
        // Only a stream with events is remembered: one that does not exist yet may later.
        known.withLock { known in
            if known.count >= capacity { known.removeAll(keepingCapacity: true) }
            known[stream] = .some(owner)
        }
        return owner
    }
}
