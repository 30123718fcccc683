import Commands
import Events
import Foundation

extension CodeExecutionWorker {
    /// Ending a sandbox run from outside a request (a given-up message, the watchdog).
    public var ending: RunEnding<CodeExecutionDecider> {
        RunEnding(
            handler: handler, commandPrefix: "code-run", userID: Self.workerUserID, malformedCode: .sandboxMessageMalformed, logger: logger,
            openLimit: { state in state.status.isTerminal ? nil : state.request?.limits.timeoutSeconds },
            started: { state in state.status == .running },
            failure: { id, state, reason in
                .finish(.failed(CodeExecutionFailed(
                    executionID: id, attempt: state.attempt, error: reason, output: .empty, exitCode: nil, signal: nil, usage: nil, failedAt: Date())),
                    attempt: state.attempt)
            })
    }
}
