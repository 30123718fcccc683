import Foundation
import Logging
import PostgresNIO

/// Runs a read of a Postgres read model. A read model whose projector has never run against this
/// database has no table yet (an API process may start before the projectors do): it reads as
/// `empty`, the model at position zero, which is what eventual consistency promises, rather than
/// failing the request with a server error.
func readModel<T>(orIfAbsent empty: @autoclosure () -> T, _ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch where PostgresErrors.sqlState(error) == PostgresErrors.undefinedTable {
        return empty()
    }
}

/// Runs not ended and requested before `date`, oldest first, from a runs read model with
/// `execution_id`, `status` and `requested_at` (`agent_executions`, `code_executions`): the
/// watchdog's candidates. An absent table has none.
func unfinishedRuns(_ client: PostgresClient, in table: String, requestedBefore date: Date, limit: Int, logger: Logger) async throws -> [UUID] {
    try await readModel(orIfAbsent: []) {
        let rows = try await client.query("""
            SELECT execution_id FROM \(unescaped: table) WHERE status IN ('pending', 'running') AND requested_at < \(date)
            ORDER BY requested_at LIMIT \(Int64(limit))
            """, logger: logger)
        var ids: [UUID] = []
        for try await id in rows.decode(UUID.self) { ids.append(id) }
        return ids
    }
}
