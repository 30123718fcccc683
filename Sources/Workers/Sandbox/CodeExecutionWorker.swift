import Commands
import Events
import Foundation
import Logging

/// Runs sandboxed code handed out through `code.execute`: starts an attempt, runs the code under
/// the limits stored with the request, and appends exactly one outcome. Appends go through the
/// execution's command handler, which admits only the current attempt: after a crash the
/// redelivered message starts the next attempt, and a terminal state accepts nothing, so a run
/// ends in exactly one terminal event however often its message is delivered.
public struct CodeExecutionWorker: Sendable {
    /// Who the worker's events say caused them.
    public static let workerUserID = "system:sandbox-worker"

    let handler: CommandHandler<CodeExecutionDecider>
    let sandbox: any SandboxRunner
    let logger: Logger

    public init(store: any EventStore, sandbox: any SandboxRunner, logger: Logger) {
        handler = CommandHandler(store: store)
        self.sandbox = sandbox
        self.logger = logger
    }

    /// The worker's handler: the message is the relayed `CodeExecutionRequested`.
    public func handle(_ item: WorkItem) async throws {
        let (message, executionID) = try item.requestedExecution(code: .sandboxMessageMalformed)
        try await run(executionID, cause: message)
    }

    /// The attempt skeleton, told what a sandbox run is.
    var attempts: AttemptRunner<CodeExecutionDecider> {
        AttemptRunner(
            handler: handler,
            run: .init(
                isOpen: { $0.request != nil && !$0.status.isTerminal }, attempts: \.attempt, maxAttempts: { $0.request?.maxAttempts ?? 0 },
                start: { id, attempt in .start(executionID: id, attempt: attempt, now: Date()) },
                exhaustedCode: .sandboxAttemptsExhausted,
                exhausted: { id, state, reason in
                    .finish(.failed(CodeExecutionFailed(
                        executionID: id, attempt: state.attempt, error: reason, output: .empty, exitCode: nil, signal: nil, usage: nil,
                        failedAt: Date())), attempt: state.attempt)
                }),
            commandPrefix: "code-run", userID: Self.workerUserID, idKey: "sandbox.execution.id", logger: logger)
    }

    func run(_ executionID: UUID, cause: IntegrationMessage) async throws {
        try await attempts.attempt(
            executionID, cause: cause,
            refused: { _, _, reason in
                // Running the code again would be refused again: the run ends, saying why.
                _ = try await ending.fail(executionID, reason: reason, step: "unstorable", cause: cause, ifAt: nil)
            }
        ) { attempt, state in
            guard let request = state.request else { return }
            let outcome: CodeExecutionEvent
            do {
                let result = try await sandbox.run(request.code, limits: request.limits)
                outcome = result.event(executionID: executionID, attempt: attempt.number, timeoutSeconds: request.limits.timeoutSeconds, now: Date())
            } catch let error as SandboxUnavailable {
                // Not the program's fault, and not one a retry of this message would mend at once:
                // recorded, so the caller learns it instead of waiting on a run that never ends.
                attempt.logger.error("the sandbox could not run the code", metadata: ["reason": "\(error)"])
                outcome = .failed(CodeExecutionFailed(
                    executionID: executionID, attempt: attempt.number, error: "the sandbox is unavailable: \(error.description)", output: .empty,
                    exitCode: nil, signal: nil, usage: nil, failedAt: Date()))
            }
            try await attempt.appendOutcome(.finish(outcome, attempt: attempt.number), step: "finish")
        }
    }
}
