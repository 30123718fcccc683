import Commands
import Events
import Foundation

/// Ending a run that cannot go on, with a failure that says why: its work message was given up
/// (dead-lettered), or it made no progress past its time limit plus a grace (the watchdog).
extension AgentExecutionRunner {
    /// The `Worker`'s give-up hook: the run the item carried ends failed. A malformed message
    /// names no run: there is nothing to end.
    public func giveUp(_ item: WorkItem, after error: any Error) async throws {
        guard let (message, executionID) = try? item.requestedExecution(code: "execution.message_malformed") else { return }
        _ = try await fail(
            executionID, reason: "the run could not be completed: its work was given up after \(item.attempt) tries", step: "given-up",
            cause: message, ifAt: nil)
    }

    /// The watchdog's check: fails the run if its stream has been silent past its time limit plus
    /// `grace`.
    public func failIfStalled(_ executionID: UUID, grace: Duration, now: Date) async throws -> Bool {
        let stream = AgentExecutionDecider.streamID(executionID).description
        let (state, _) = try await handler.load(stream)
        guard state.request != nil, !state.status.isTerminal, let last = try await handler.lastProgress(stream),
            CommandHandler<AgentExecutionDecider>.isStalled(lastAt: last.at, limitSeconds: state.timeoutSeconds, grace: grace, now: now)
        else { return false }
        let silent = Int(now.timeIntervalSince(last.at))
        return try await fail(
            executionID, reason: "the run made no progress for \(silent) s (its time limit is \(state.timeoutSeconds) s); the worker running it was lost",
            step: "stalled-\(last.version)", cause: nil, ifAt: last.version)
    }

    func fail(_ executionID: UUID, reason: String, step: String, cause: IntegrationMessage?, ifAt version: Int64?) async throws -> Bool {
        let stream = AgentExecutionDecider.streamID(executionID)
        let (state, _) = try await handler.load(stream.description)
        guard !state.status.isTerminal, let agentID = state.agentID else { return false }
        let failed = AgentExecutionFailed(executionID: executionID, agentID: agentID, error: reason, attempt: state.attempt, retryable: true, failedAt: Date())
        let ended = try await handler.end(
            .fail(failed), on: stream, commandID: "agent-run/\(executionID.uuidString.lowercased())/end/\(step)", userID: Self.workerUserID,
            cause: cause, ifAt: version)
        if ended { logger.warning("agent run ended", metadata: ["agent.execution.id": "\(executionID)", "reason": "\(reason)"]) }
        return ended
    }
}
