import Events

/// A read model built in Postgres. `statements(for:)` is pure: the runner applies what it
/// returns, with the checkpoint, in one transaction. Throwing parks the event.
public protocol PostgresProjection: Sendable {
    /// Stable forever: checkpoints and parked events hang on it.
    var name: String { get }
    var tables: [ReadModelTable] { get }
    func statements(for event: RecordedEvent) throws -> [SQLStatement]
}

/// A read model built in Redis. `writes(for:)` is pure: the runner applies what it returns, with
/// the checkpoint, in one Lua script that ignores events at or before the stored checkpoint.
public protocol RedisProjection: Sendable {
    var name: String { get }
    func writes(for event: RecordedEvent) throws -> [RedisWrite]
}
