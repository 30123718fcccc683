import Events
import Foundation

/// The seed's execution cache in Redis: `execution:{id}` with status, output, error, duration and
/// tokens, which `GET .../executions/{exec_id}` reads first. Kept an hour after a terminal state.
public struct ExecutionCacheProjection: RedisProjection {
    public let name = "execution_cache"
    public static let terminalRetentionSeconds = 3600
    let registry: EventRegistry

    public init(registry: EventRegistry = AgentExecutionEvent.registry) {
        self.registry = registry
    }

    public static func key(_ executionID: UUID) -> String { "execution:\(executionID.uuidString.lowercased())" }

    public func writes(for event: RecordedEvent) throws -> [RedisWrite] {
        guard event.streamID.hasPrefix("agentexecution-"), registry.registrations[event.eventType] != nil else { return [] }
        let execution = try registry.decode(event, as: AgentExecutionEvent.self)
        let version = String(event.streamVersion)
        switch execution {
        case .requested(let requested):
            return [.hashSet(key: Self.key(requested.executionID), fields: [
                "execution_id": requested.executionID.uuidString.lowercased(), "agent_id": requested.agentID.uuidString.lowercased(),
                "owner_id": requested.ownerID, "status": "pending", "model": requested.settings.model,
                "requested_at": Timestamp.format(requested.requestedAt), "version": version,
            ].merging(requested.fork.map { ["forked_from": $0.originExecutionID.uuidString.lowercased(), "from_call": String($0.fromCall)] } ?? [:]) { a, _ in a })]
        case .started(let started):
            return [.hashSet(key: Self.key(started.executionID), fields: [
                "status": "running", "attempt": String(started.attempt), "started_at": Timestamp.format(started.startedAt),
                "version": version,
            ])]
        case .llmCallRecorded(let call):
            return [.hashSet(key: Self.key(call.executionID), fields: ["model": call.model, "version": version])]
        case .toolInvoked(let tool):
            return [.hashSet(key: Self.key(tool.executionID), fields: ["version": version])]
        case .completed(let completed):
            return terminal(completed.executionID, [
                "status": "completed", "output": completed.output, "model": completed.model,
                "prompt_tokens": String(completed.tokensUsed.promptTokens), "completion_tokens": String(completed.tokensUsed.completionTokens),
                "tokens_used": String(completed.tokensUsed.totalTokens), "cost": String(completed.cost),
                "duration_ms": String(completed.durationMs), "finished_at": Timestamp.format(completed.completedAt), "version": version,
            ])
        case .failed(let failed):
            return terminal(failed.executionID, [
                "status": "failed", "error": failed.error, "finished_at": Timestamp.format(failed.failedAt), "version": version,
            ])
        case .timedOut(let timedOut):
            return terminal(timedOut.executionID, [
                "status": "failed", "error": "the run did not finish within \(timedOut.timeoutSeconds) s",
                "finished_at": Timestamp.format(timedOut.timedOutAt), "version": version,
            ])
        case .cancelled(let cancelled):
            return terminal(cancelled.executionID, [
                "status": "cancelled", "finished_at": Timestamp.format(cancelled.cancelledAt), "version": version,
            ])
        }
    }

    func terminal(_ id: UUID, _ fields: [String: String]) -> [RedisWrite] {
        [.hashSet(key: Self.key(id), fields: fields), .expire(key: Self.key(id), seconds: Self.terminalRetentionSeconds)]
    }
}
