import Commands
import Events
import Foundation

/// Users as authentication needs them: from their event streams (strongly consistent, so a
/// new user can sign in at once), cached for a few seconds per process. Disabling a user or
/// changing their roles therefore takes effect within `ttl` on every token already issued.
public actor UserDirectory {
    let handler: CommandHandler<UserDecider>
    let ttl: Duration
    let maxEntries: Int
    var cache: [UUID: (state: UserDecider.State, until: ContinuousClock.Instant)] = [:]

    public init(store: any EventStore, ttl: Duration = .seconds(5), maxEntries: Int = 10_000) {
        handler = CommandHandler(store: store)
        self.ttl = ttl
        self.maxEntries = maxEntries
    }

    public func user(_ id: UUID) async throws -> UserDecider.State {
        let now = ContinuousClock.now
        if let hit = cache[id], hit.until > now { return hit.state }
        let (state, _) = try await handler.load(UserDecider.streamID(id).description)
        if cache.count >= maxEntries { cache = cache.filter { $0.value.until > now } }
        if cache.count >= maxEntries { cache.removeAll() }
        // Valid for `ttl` from when the read began, not from when it ended: the state may be
        // as old as the read's start, and a slow read must not stretch the promised bound.
        cache[id] = (state, now.advanced(by: ttl))
        return state
    }
}
