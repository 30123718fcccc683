import Events
import Foundation

/// Token and cost totals per agent and per UTC day (Postgres, `agent_usage_daily`). Every model
/// call counts, whatever became of its run: that is what the model provider bills.
public struct AgentUsageProjection: PostgresProjection {
    public let name = "agent_usage_daily"
    let registry: EventRegistry

    public init(registry: EventRegistry = AgentExecutionEvent.registry) {
        self.registry = registry
    }

    public var tables: [ReadModelTable] {
        [ReadModelTable(name: "agent_usage_daily", ddl: """
            CREATE TABLE IF NOT EXISTS {agent_usage_daily} (
                agent_id          uuid NOT NULL,
                day               date NOT NULL,
                model_calls       bigint NOT NULL DEFAULT 0,
                executions        bigint NOT NULL DEFAULT 0,
                completed         bigint NOT NULL DEFAULT 0,
                failed            bigint NOT NULL DEFAULT 0,
                prompt_tokens     bigint NOT NULL DEFAULT 0,
                completion_tokens bigint NOT NULL DEFAULT 0,
                cost              double precision NOT NULL DEFAULT 0,
                PRIMARY KEY (agent_id, day)
            )
            """)]
    }

    public func statements(for event: RecordedEvent) throws -> [SQLStatement] {
        guard event.streamID.hasPrefix("agentexecution-"), registry.registrations[event.eventType] != nil else { return [] }
        let execution = try registry.decode(event, as: AgentExecutionEvent.self)
        let columns: [(String, SQLValue)]
        switch execution {
        case .requested: columns = [("executions", .int(1))]
        case .llmCallRecorded(let call):
            columns = [
                ("model_calls", .int(1)), ("prompt_tokens", .int(Int64(call.usage.promptTokens))),
                ("completion_tokens", .int(Int64(call.usage.completionTokens))), ("cost", .double(call.cost)),
            ]
        case .completed: columns = [("completed", .int(1))]
        case .failed, .timedOut: columns = [("failed", .int(1))]
        case .started, .toolInvoked, .cancelled: return []
        }
        let names = columns.map(\.0)
        let placeholders = columns.indices.map { "$\($0 + 3)" }
        let increments = names.map { "\($0) = {agent_usage_daily}.\($0) + excluded.\($0)" }
        return [SQLStatement("""
            INSERT INTO {agent_usage_daily} (agent_id, day, \(names.joined(separator: ", ")))
            VALUES ($1, ($2::timestamptz AT TIME ZONE 'UTC')::date, \(placeholders.joined(separator: ", ")))
            ON CONFLICT (agent_id, day) DO UPDATE SET \(increments.joined(separator: ", "))
            """, [.uuid(execution.agentID), .timestamp(event.recordedAt)] + columns.map(\.1))]
    }
}
