import Commands
import Events
import Foundation

extension AgentExecutionRunner {
    /// Ending an agent run from outside a request (a given-up message, the watchdog).
    public var ending: RunEnding<AgentExecutionDecider> {
        RunEnding(
            handler: handler, commandPrefix: "agent-run", userID: Self.workerUserID, malformedCode: .executionMessageMalformed, logger: logger,
            openLimit: { state in state.request == nil || state.status.isTerminal ? nil : state.timeoutSeconds },
            started: { state in state.status == .running },
            failure: { id, state, reason in
                state.agentID.map { agent in
                    .fail(AgentExecutionFailed(executionID: id, agentID: agent, error: reason, attempt: state.attempt, retryable: true, failedAt: Date()))
                }
            })
    }
}
