import Events
import Foundation

/// Executions per agent, for `GET /agents/{id}/executions` (history with pagination and a status
/// filter) and the fallback of `GET .../executions/{exec_id}` (Postgres, `agent_executions`).
public struct AgentExecutionsProjection: PostgresProjection {
    public let name = "agent_executions"
    let registry: EventRegistry

    public init(registry: EventRegistry = AgentExecutionEvent.registry) {
        self.registry = registry
    }

    public var tables: [ReadModelTable] {
        [ReadModelTable(name: "agent_executions", ddl: """
            CREATE TABLE IF NOT EXISTS {agent_executions} (
                execution_id      uuid PRIMARY KEY,
                agent_id          uuid NOT NULL,
                owner_id          text NOT NULL,
                status            text NOT NULL,
                input             text NOT NULL,
                output            text,
                error             text,
                model             text NOT NULL,
                attempt           integer NOT NULL DEFAULT 0,
                prompt_tokens     bigint NOT NULL DEFAULT 0,
                completion_tokens bigint NOT NULL DEFAULT 0,
                cost              double precision NOT NULL DEFAULT 0,
                duration_ms       bigint,
                version           bigint NOT NULL,
                requested_at      timestamptz NOT NULL,
                started_at        timestamptz,
                finished_at       timestamptz,
                forked_from       uuid,
                from_call         integer
            );
            CREATE INDEX IF NOT EXISTS {agent_executions}_agent_idx ON {agent_executions} (agent_id, requested_at DESC, execution_id);
            CREATE INDEX IF NOT EXISTS {agent_executions}_agent_status_idx ON {agent_executions} (agent_id, status, requested_at DESC)
            """)]
    }

    public func statements(for event: RecordedEvent) throws -> [SQLStatement] {
        guard event.streamID.hasPrefix("agentexecution-"), registry.registrations[event.eventType] != nil else { return [] }
        let version = SQLValue.int(event.streamVersion)
        switch try registry.decode(event, as: AgentExecutionEvent.self) {
        case .requested(let requested):
            return [SQLStatement("""
                INSERT INTO {agent_executions} (execution_id, agent_id, owner_id, status, input, model, version, requested_at, forked_from, from_call)
                VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $8, $9) ON CONFLICT (execution_id) DO NOTHING
                """, [.uuid(requested.executionID), .uuid(requested.agentID), .text(requested.ownerID), .text(requested.input),
                      .text(requested.settings.model), version, .timestamp(requested.requestedAt),
                      requested.fork.map { .uuid($0.originExecutionID) } ?? .null, requested.fork.map { .int(Int64($0.fromCall)) } ?? .null])]
        case .started(let started):
            // A restarted attempt begins its token count again: the totals describe the attempt
            // that produced the outcome (per-day usage, in its own model, counts every call).
            return [update(started.executionID, version, """
                status = 'running', attempt = $3, started_at = coalesce(started_at, $4), prompt_tokens = 0, completion_tokens = 0, cost = 0
                """, [.int(Int64(started.attempt)), .timestamp(started.startedAt)])]
        case .llmCallRecorded(let call):
            return [update(call.executionID, version, """
                model = $3, prompt_tokens = prompt_tokens + $4, completion_tokens = completion_tokens + $5, cost = cost + $6
                """, [.text(call.model), .int(Int64(call.usage.promptTokens)), .int(Int64(call.usage.completionTokens)), .double(call.cost)])]
        case .toolInvoked(let tool):
            return [SQLStatement("UPDATE {agent_executions} SET version = $2 WHERE execution_id = $1", [.uuid(tool.executionID), version])]
        case .completed(let completed):
            return [update(completed.executionID, version, """
                status = 'completed', output = $3, model = $4, prompt_tokens = $5, completion_tokens = $6, cost = $7,
                duration_ms = $8, finished_at = $9
                """, [.text(completed.output), .text(completed.model), .int(Int64(completed.tokensUsed.promptTokens)),
                      .int(Int64(completed.tokensUsed.completionTokens)), .double(completed.cost), .int(Int64(completed.durationMs)),
                      .timestamp(completed.completedAt)])]
        case .failed(let failed):
            return [finish(failed.executionID, version, status: "failed", error: failed.error, at: failed.failedAt)]
        case .timedOut(let timedOut):
            return [finish(
                timedOut.executionID, version, status: "failed", error: "the run did not finish within \(timedOut.timeoutSeconds) s",
                at: timedOut.timedOutAt)]
        case .cancelled(let cancelled):
            return [finish(cancelled.executionID, version, status: "cancelled", error: nil, at: cancelled.cancelledAt)]
        }
    }

    func update(_ id: UUID, _ version: SQLValue, _ assignments: String, _ binds: [SQLValue]) -> SQLStatement {
        SQLStatement("UPDATE {agent_executions} SET \(assignments), version = $2 WHERE execution_id = $1", [.uuid(id), version] + binds)
    }

    func finish(_ id: UUID, _ version: SQLValue, status: String, error: String?, at: Date) -> SQLStatement {
        update(id, version, """
            status = $3, error = $4, finished_at = $5,
            duration_ms = (extract(epoch FROM ($5::timestamptz - coalesce(started_at, requested_at))) * 1000)::bigint
            """, [.text(status), error.map(SQLValue.text) ?? .null, .timestamp(at)])
    }
}
