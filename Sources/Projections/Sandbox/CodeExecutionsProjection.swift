import Commands
import Events
import Foundation

/// Sandboxed runs, for `GET /sandbox/executions/{id}` (Postgres, `code_executions`).
public struct CodeExecutionsProjection: PostgresProjection {
    public let name = "code_executions"
    let registry: EventRegistry

    public init(registry: EventRegistry = CodeExecutionEvent.registry) {
        self.registry = registry
    }

    public var tables: [ReadModelTable] {
        [ReadModelTable(name: "code_executions", ddl: """
            CREATE TABLE IF NOT EXISTS {code_executions} (
                execution_id      uuid PRIMARY KEY,
                owner_id          text NOT NULL,
                language          text NOT NULL,
                status            text NOT NULL,
                timeout_seconds   integer NOT NULL,
                attempt           integer NOT NULL DEFAULT 0,
                stdout            text,
                stderr            text,
                stdout_bytes      bigint,
                stderr_bytes      bigint,
                error             text,
                exit_code         integer,
                signal            integer,
                limit_name        text,
                duration_ms       bigint,
                cpu_ms            bigint,
                peak_memory_bytes bigint,
                version           bigint NOT NULL,
                requested_at      timestamptz NOT NULL,
                started_at        timestamptz,
                finished_at       timestamptz
            );
            CREATE INDEX IF NOT EXISTS {code_executions}_owner_idx ON {code_executions} (owner_id, requested_at DESC)
            """)]
    }

    public func statements(for event: RecordedEvent) throws -> [SQLStatement] {
        guard event.streamID.hasPrefix("\(CodeExecutionDecider.category)-"), registry.registrations[event.eventType] != nil else { return [] }
        let version = SQLValue.int(event.streamVersion)
        switch try registry.decode(event, as: CodeExecutionEvent.self) {
        case .requested(let requested):
            return [SQLStatement("""
                INSERT INTO {code_executions} (execution_id, owner_id, language, status, timeout_seconds, version, requested_at)
                VALUES ($1, $2, $3, 'pending', $4, $5, $6) ON CONFLICT (execution_id) DO NOTHING
                """, [.uuid(requested.executionID), .text(requested.ownerID), .text(requested.language),
                      .int(Int64(requested.limits.timeoutSeconds)), version, .timestamp(requested.requestedAt)])]
        case .started(let started):
            return [update(started.executionID, version, "status = 'running', attempt = $3, started_at = $4",
                [.int(Int64(started.attempt)), .timestamp(started.startedAt)])]
        case .completed(let e):
            return [finish(e.executionID, version, status: "completed", output: e.output, error: nil, exitCode: e.exitCode, signal: nil,
                limit: nil, usage: e.usage, at: e.completedAt)]
        case .failed(let e):
            return [finish(e.executionID, version, status: "failed", output: e.output, error: e.error, exitCode: e.exitCode, signal: e.signal,
                limit: nil, usage: e.usage, at: e.failedAt)]
        case .timedOut(let e):
            return [finish(e.executionID, version, status: "timed_out", output: e.output,
                error: "the program was still running after \(e.timeoutSeconds) s and was stopped", exitCode: nil, signal: nil, limit: nil,
                usage: e.usage, at: e.timedOutAt)]
        case .limitExceeded(let e):
            return [finish(e.executionID, version, status: "limit_exceeded", output: e.output, error: Self.explain(limit: e.limit),
                exitCode: e.exitCode, signal: e.signal, limit: e.limit, usage: e.usage, at: e.exceededAt)]
        }
    }

    /// One readable line per limit.
    public static func explain(limit: String) -> String {
        switch limit {
        case "memory": "the program ran out of its memory limit"
        case "cpu": "the program used up its CPU time limit"
        case "file_size": "the program tried to write a file larger than its limit"
        case "disk": "the program filled its workspace or /tmp"
        case "processes": "the program started more processes or threads than its limit"
        default: "the program exceeded its \(limit) limit"
        }
    }

    func update(_ id: UUID, _ version: SQLValue, _ assignments: String, _ binds: [SQLValue]) -> SQLStatement {
        SQLStatement("UPDATE {code_executions} SET \(assignments), version = $2 WHERE execution_id = $1", [.uuid(id), version] + binds)
    }

    func finish(
        _ id: UUID, _ version: SQLValue, status: String, output: SandboxOutput, error: String?, exitCode: Int?, signal: Int?, limit: String?,
        usage: SandboxUsage?, at: Date
    ) -> SQLStatement {
        func int(_ value: Int?) -> SQLValue { value.map { .int(Int64($0)) } ?? .null }
        return update(id, version, """
            status = $3, stdout = $4, stderr = $5, stdout_bytes = $6, stderr_bytes = $7, error = $8, exit_code = $9, signal = $10,
            limit_name = $11, duration_ms = $12, cpu_ms = $13, peak_memory_bytes = $14, finished_at = $15
            """, [.text(status), .text(output.stdout), .text(output.stderr), .int(output.stdoutBytes), .int(output.stderrBytes),
                  error.map(SQLValue.text) ?? .null, int(exitCode), int(signal), limit.map(SQLValue.text) ?? .null,
                  int(usage?.durationMs), int(usage?.cpuMs), usage.map { .int($0.peakMemoryBytes) } ?? .null, .timestamp(at)])
    }
}

/// A sandboxed run as the query API shows it.
public struct CodeExecutionView: Sendable, Equatable {
    public var id: UUID
    public var ownerID: String
    public var language: String
    public var status: String
    public var timeoutSeconds: Int
    public var stdout: String?
    public var stderr: String?
    public var stdoutBytes: Int64?
    public var stderrBytes: Int64?
    public var error: String?
    public var exitCode: Int?
    public var signal: Int?
    public var limit: String?
    public var durationMs: Int?
    public var cpuMs: Int?
    public var peakMemoryBytes: Int64?
    public var requestedAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    public var version: Int64

    public init(
        id: UUID, ownerID: String, language: String, status: String, timeoutSeconds: Int, stdout: String?, stderr: String?,
        stdoutBytes: Int64?, stderrBytes: Int64?, error: String?, exitCode: Int?, signal: Int?, limit: String?, durationMs: Int?,
        cpuMs: Int?, peakMemoryBytes: Int64?, requestedAt: Date, startedAt: Date?, finishedAt: Date?, version: Int64
    ) {
        self.id = id
        self.ownerID = ownerID
        self.language = language
        self.status = status
        self.timeoutSeconds = timeoutSeconds
        self.stdout = stdout
        self.stderr = stderr
        self.stdoutBytes = stdoutBytes
        self.stderrBytes = stderrBytes
        self.error = error
        self.exitCode = exitCode
        self.signal = signal
        self.limit = limit
        self.durationMs = durationMs
        self.cpuMs = cpuMs
        self.peakMemoryBytes = peakMemoryBytes
        self.requestedAt = requestedAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.version = version
    }
}

/// Reads of the sandbox's read model.
public protocol SandboxQueries: Sendable {
    func execution(_ id: UUID) async throws -> CodeExecutionView?
    /// Waits (bounded) until the read model has passed `checkpoint`; false on timeout.
    func waitForExecutions(_ checkpoint: Checkpoint, timeout: Duration) async throws -> Bool
}
