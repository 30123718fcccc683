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
        let (message, executionID) = try item.requestedExecution(code: "sandbox.message_malformed")
        try await run(executionID, cause: message)
    }

    func run(_ executionID: UUID, cause: IntegrationMessage) async throws {
        let stream = CodeExecutionDecider.streamID(executionID)
        let (state, _) = try await handler.load(stream.description)
        guard let request = state.request, !state.status.isTerminal else { return }
        var logger = logger
        logger[metadataKey: "sandbox.execution.id"] = "\(executionID)"
        let attempt = state.attempt + 1
        func append(_ command: CodeExecutionDecider.Command, step: String) async throws {
            let context = CommandContext(
                commandID: "code-run/\(executionID.uuidString.lowercased())/\(attempt)/\(step)", userID: Self.workerUserID,
                tenantID: cause.tenantID, correlationID: cause.correlationID, causationID: cause.eventID.uuidString.lowercased())
            do {
                _ = try await handler.handle(command, on: stream, context: context)
            } catch let error as DomainError where error.kind == .conflict && step != "start" {
                logger.info("outcome not recorded: the execution already ended", metadata: ["reason": "\(error)"])
            }
        }
        do {
            try await append(.start(executionID: executionID, attempt: attempt, now: Date()), step: "start")
        } catch let error as DomainError where error.code == "sandbox.attempts_exhausted" {
            logger.warning("sandbox run interrupted too often; failing it", metadata: ["attempts": "\(request.maxAttempts)"])
            try await append(.finish(.failed(CodeExecutionFailed(
                executionID: executionID, attempt: state.attempt,
                error: "the run was interrupted \(request.maxAttempts) times before it could finish", output: .empty, exitCode: nil,
                signal: nil, usage: nil, failedAt: Date())), attempt: state.attempt), step: "exhausted")
            return
        } catch let error as DomainError {
            logger.info("sandbox run not started", metadata: ["reason": "\(error)"])
            return
        }
        let outcome: CodeExecutionEvent
        do {
            let result = try await sandbox.run(request.code, limits: request.limits)
            outcome = result.event(executionID: executionID, attempt: attempt, timeoutSeconds: request.limits.timeoutSeconds, now: Date())
        } catch let error as SandboxUnavailable {
            // Not the program's fault, and not one a retry of this message would mend at once:
            // recorded, so the caller learns it instead of waiting on a run that never ends.
            logger.error("the sandbox could not run the code", metadata: ["reason": "\(error)"])
            outcome = .failed(CodeExecutionFailed(
                executionID: executionID, attempt: attempt, error: "the sandbox is unavailable: \(error.description)", output: .empty,
                exitCode: nil, signal: nil, usage: nil, failedAt: Date()))
        }
        do {
            try await append(.finish(outcome, attempt: attempt), step: "finish")
        } catch EventStoreError.refused(let reason) {
            // Running the code again would be refused again: the run ends, saying why.
            logger.error("the run's outcome could not be stored; failing it", metadata: ["reason": "\(reason)"])
            _ = try await ending.fail(executionID, reason: "the run's outcome could not be stored: \(reason)", step: "unstorable", cause: cause, ifAt: nil)
        }
    }
}
