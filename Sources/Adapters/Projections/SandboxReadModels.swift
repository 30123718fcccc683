import Events
import Foundation
import Logging
import PostgresNIO
import Projections

/// `SandboxQueries` over `code_executions` (read through its view, so a rebuild's swap is
/// invisible).
public struct SandboxReadModels: SandboxQueries {
    let client: PostgresClient
    let store: PostgresProjectionStore<CodeExecutionsProjection>
    let logger: Logger

    public init(client: PostgresClient, store: PostgresProjectionStore<CodeExecutionsProjection>, logger: Logger) {
        self.client = client
        self.store = store
        self.logger = logger
    }

    typealias Row = (
        UUID, String, String, String, Int32, String?, String?, Int64?, Int64?, String?, Int32?, Int32?, String?, Int64?, Int64?, Int64?,
        Date, Date?, Date?, Int64
    )

    public func execution(_ id: UUID) async throws -> CodeExecutionView? {
        try await readModel(orIfAbsent: nil) {
            let rows = try await client.query("""
                SELECT execution_id, owner_id, language, status, timeout_seconds, stdout, stderr, stdout_bytes, stderr_bytes, error, exit_code,
                       signal, limit_name, duration_ms, cpu_ms, peak_memory_bytes, requested_at, started_at, finished_at, version
                FROM code_executions WHERE execution_id = \(id)
                """, logger: logger)
            for try await row in rows.decode(Row.self) {
                return CodeExecutionView(
                    id: row.0, ownerID: row.1, language: row.2, status: row.3, timeoutSeconds: Int(row.4), stdout: row.5.map(PostgresText.decode), stderr: row.6.map(PostgresText.decode),
                    stdoutBytes: row.7, stderrBytes: row.8, error: row.9.map(PostgresText.decode), exitCode: row.10.map(Int.init), signal: row.11.map(Int.init),
                    limit: row.12, durationMs: row.13.map(Int.init), cpuMs: row.14.map(Int.init), peakMemoryBytes: row.15, requestedAt: row.16,
                    startedAt: row.17, finishedAt: row.18, version: row.19)
            }
            return nil
        }
    }

    /// Runs not ended and requested before `date`, oldest first: the watchdog's candidates.
    public func unfinished(requestedBefore date: Date, limit: Int) async throws -> [UUID] {
        try await unfinishedRuns(client, in: "code_executions", requestedBefore: date, limit: limit, logger: logger)
    }

    public func waitForExecutions(_ checkpoint: Checkpoint, timeout: Duration) async throws -> Bool {
        try await ReadYourWrites.wait(for: store, toReach: checkpoint, timeout: timeout)
    }
}
