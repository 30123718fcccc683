import Events

/// A read model built in Postgres. `statements(for:)` is pure: the runner applies what it
/// returns, with the checkpoint, in one transaction. Throwing parks the event.
public protocol PostgresProjection: Sendable {
    /// Stable forever: checkpoints and parked events hang on it.
    var name: String { get }
    var tables: [ReadModelTable] { get }
    func statements(for event: RecordedEvent) throws -> [SQLStatement]
    /// Events applied per transaction, if not the store's default. A projection whose events
    /// each take several statements keeps its transactions short with a smaller one: while a
    /// projector's transaction is open it holds back every reader of the log on the server.
    var batchSize: Int? { get }
}

extension PostgresProjection {
    public var batchSize: Int? { nil }
}

/// A read model built in Redis. `writes(for:)` is pure: the runner applies what it returns, with
/// the checkpoint, in one Lua script that ignores events at or before the stored checkpoint.
public protocol RedisProjection: Sendable {
    var name: String { get }
    func writes(for event: RecordedEvent) throws -> [RedisWrite]
}
