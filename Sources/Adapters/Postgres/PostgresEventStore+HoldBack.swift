import Commands
import Events

extension PostgresEventStore: HoldBackProbe {}

extension PostgresEventStore: LagProbe {
    public func eventsAfter(_ checkpoint: Checkpoint, cap: Int) async throws -> Int {
        try await Self.count(after: checkpoint, cap: cap, client: client, logger: logger)
    }
}
extension PostgresEventStore: HeadProbe {}
