import Commands
import Events
import Foundation

/// One row per agent run, for `GET /analytics/usage` (Postgres, `agent_run_analytics`): its
/// owner, tenant, agent and model, how it ended, its recorded duration, and what it used. Every
/// figure the route gives is computed from these rows at read time (sums, counts and
/// `percentile_disc`), so each is exact: no sample, no pre-aggregated bucket to drift.
///
/// Every model call counts, whatever became of its run or attempt (that is what the provider
/// bills), and so does every tool call. Only events are read, never the clock, so a rebuild
/// writes the same rows as the live projector.
public struct AgentRunAnalyticsProjection: PostgresProjection {
    public let name = "agent_run_analytics"
    let registry: EventRegistry

    public init(registry: EventRegistry = AgentExecutionEvent.registry) {
        self.registry = registry
    }

    public var tables: [ReadModelTable] {
        [ReadModelTable(name: "agent_run_analytics", ddl: """
            CREATE TABLE IF NOT EXISTS {agent_run_analytics} (
                execution_id      uuid PRIMARY KEY,
                agent_id          uuid NOT NULL,
                owner_id          text NOT NULL,
                tenant_id         text,
                model             text NOT NULL,
                status            text NOT NULL,
                requested_at      timestamptz NOT NULL,
                finished_at       timestamptz,
                duration_ms       bigint,
                attempts          integer NOT NULL DEFAULT 0,
                model_calls       integer NOT NULL DEFAULT 0,
                tool_calls        integer NOT NULL DEFAULT 0,
                prompt_tokens     bigint NOT NULL DEFAULT 0,
                completion_tokens bigint NOT NULL DEFAULT 0,
                cost              double precision NOT NULL DEFAULT 0
            );
            CREATE INDEX IF NOT EXISTS {agent_run_analytics}_tenant_idx ON {agent_run_analytics} (tenant_id, requested_at);
            CREATE INDEX IF NOT EXISTS {agent_run_analytics}_owner_idx ON {agent_run_analytics} (owner_id, requested_at)
            """)]
    }

    public func statements(for event: RecordedEvent) throws -> [SQLStatement] {
        guard event.streamID.hasPrefix("\(AgentExecutionDecider.category)-"), registry.registrations[event.eventType] != nil else { return [] }
        let execution = try registry.decode(event, as: AgentExecutionEvent.self)
        let id = SQLValue.uuid(execution.executionID)
        switch execution {
        case .requested(let requested):
            return [SQLStatement("""
                INSERT INTO {agent_run_analytics} (execution_id, agent_id, owner_id, tenant_id, model, status, requested_at)
                VALUES ($1, $2, $3, $4, $5, 'pending', $6) ON CONFLICT (execution_id) DO NOTHING
                """, [id, .uuid(requested.agentID), .text(requested.ownerID), event.metadata.tenantID.map(SQLValue.text) ?? .null,
                      .text(requested.settings.model), .timestamp(requested.requestedAt)])]
        case .started:
            return [update(id, "attempts = attempts + 1, status = CASE WHEN status = 'pending' THEN 'running' ELSE status END")]
        case .llmCallRecorded(let call):
            return [update(id, "model_calls = model_calls + 1, prompt_tokens = prompt_tokens + $2, completion_tokens = completion_tokens + $3, cost = cost + $4",
                [.int(Int64(call.usage.promptTokens)), .int(Int64(call.usage.completionTokens)), .double(call.cost)])]
        case .toolInvoked:
            return [update(id, "tool_calls = tool_calls + 1")]
        case .completed(let completed):
            return [update(id, "status = 'completed', duration_ms = $2, finished_at = $3",
                [.int(Int64(completed.durationMs)), .timestamp(completed.completedAt)])]
        case .failed(let failed):
            return [update(id, "status = 'failed', finished_at = $2", [.timestamp(failed.failedAt)])]
        case .timedOut(let timedOut):
            return [update(id, "status = 'timed_out', finished_at = $2", [.timestamp(timedOut.timedOutAt)])]
        case .cancelled(let cancelled):
            return [update(id, "status = 'cancelled', finished_at = $2", [.timestamp(cancelled.cancelledAt)])]
        }
    }

    func update(_ id: SQLValue, _ assignments: String, _ binds: [SQLValue] = []) -> SQLStatement {
        SQLStatement("UPDATE {agent_run_analytics} SET \(assignments) WHERE execution_id = $1", [id] + binds)
    }
}

/// One row per sandbox run, for `GET /analytics/sandbox` (Postgres, `sandbox_run_analytics`):
/// how it ended, which limit it hit, and its recorded wall time, CPU time and peak memory.
public struct SandboxRunAnalyticsProjection: PostgresProjection {
    public let name = "sandbox_run_analytics"
    let registry: EventRegistry

    public init(registry: EventRegistry = CodeExecutionEvent.registry) {
        self.registry = registry
    }

    public var tables: [ReadModelTable] {
        [ReadModelTable(name: "sandbox_run_analytics", ddl: """
            CREATE TABLE IF NOT EXISTS {sandbox_run_analytics} (
                execution_id      uuid PRIMARY KEY,
                owner_id          text NOT NULL,
                tenant_id         text,
                language          text NOT NULL,
                status            text NOT NULL,
                limit_name        text,
                requested_at      timestamptz NOT NULL,
                finished_at       timestamptz,
                attempts          integer NOT NULL DEFAULT 0,
                duration_ms       bigint,
                cpu_ms            bigint,
                peak_memory_bytes bigint
            );
            CREATE INDEX IF NOT EXISTS {sandbox_run_analytics}_tenant_idx ON {sandbox_run_analytics} (tenant_id, requested_at);
            CREATE INDEX IF NOT EXISTS {sandbox_run_analytics}_owner_idx ON {sandbox_run_analytics} (owner_id, requested_at)
            """)]
    }

    public func statements(for event: RecordedEvent) throws -> [SQLStatement] {
        guard event.streamID.hasPrefix("\(CodeExecutionDecider.category)-"), registry.registrations[event.eventType] != nil else { return [] }
        switch try registry.decode(event, as: CodeExecutionEvent.self) {
        case .requested(let requested):
            return [SQLStatement("""
                INSERT INTO {sandbox_run_analytics} (execution_id, owner_id, tenant_id, language, status, requested_at)
                VALUES ($1, $2, $3, $4, 'pending', $5) ON CONFLICT (execution_id) DO NOTHING
                """, [.uuid(requested.executionID), .text(requested.ownerID), event.metadata.tenantID.map(SQLValue.text) ?? .null,
                      .text(requested.language), .timestamp(requested.requestedAt)])]
        case .started(let started):
            return [update(started.executionID, "attempts = attempts + 1, status = CASE WHEN status = 'pending' THEN 'running' ELSE status END")]
        case .completed(let e):
            return [finish(e.executionID, status: "completed", limit: nil, usage: e.usage, at: e.completedAt)]
        case .failed(let e):
            return [finish(e.executionID, status: "failed", limit: nil, usage: e.usage, at: e.failedAt)]
        case .timedOut(let e):
            return [finish(e.executionID, status: "timed_out", limit: "timeout", usage: e.usage, at: e.timedOutAt)]
        case .limitExceeded(let e):
            return [finish(e.executionID, status: "limit_exceeded", limit: e.limit, usage: e.usage, at: e.exceededAt)]
        }
    }

    func update(_ id: UUID, _ assignments: String, _ binds: [SQLValue] = []) -> SQLStatement {
        SQLStatement("UPDATE {sandbox_run_analytics} SET \(assignments) WHERE execution_id = $1", [.uuid(id)] + binds)
    }

    func finish(_ id: UUID, status: String, limit: String?, usage: SandboxUsage?, at: Date) -> SQLStatement {
        update(id, "status = $2, limit_name = $3, finished_at = $4, duration_ms = $5, cpu_ms = $6, peak_memory_bytes = $7", [
            .text(status), limit.map(SQLValue.text) ?? .null, .timestamp(at), usage.map { .int(Int64($0.durationMs)) } ?? .null,
            usage.map { .int(Int64($0.cpuMs)) } ?? .null, usage.map { .int($0.peakMemoryBytes) } ?? .null,
        ])
    }
}
