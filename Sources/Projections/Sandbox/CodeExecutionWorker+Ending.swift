import Commands
import Events
import Foundation

/// Ending a run that cannot go on, with a failure that says why: its work message was given up
/// (dead-lettered), or it made no progress past its time limit plus a grace (the watchdog).
extension CodeExecutionWorker {
    /// The `Worker`'s give-up hook: the run the item carried ends failed. A malformed message
    /// names no run: there is nothing to end.
    public func giveUp(_ item: WorkItem, after error: any Error) async throws {
        guard let (message, executionID) = try? item.requestedExecution(code: "sandbox.message_malformed") else { return }
        _ = try await fail(
            executionID, reason: "the run could not be completed: its work was given up after \(item.attempt) tries", step: "given-up",
            cause: message, ifAt: nil)
    }

    /// The watchdog's check: fails the run if its stream has been silent past its time limit plus
    /// `grace`.
    public func failIfStalled(_ executionID: UUID, grace: Duration, now: Date) async throws -> Bool {
        let stream = CodeExecutionDecider.streamID(executionID).description
        let (state, _) = try await handler.load(stream)
        guard let request = state.request, !state.status.isTerminal, let last = try await handler.lastProgress(stream),
            CommandHandler<CodeExecutionDecider>.isStalled(lastAt: last.at, limitSeconds: request.limits.timeoutSeconds, grace: grace, now: now)
        else { return false }
        let silent = Int(now.timeIntervalSince(last.at))
        return try await fail(
            executionID, reason: "the run made no progress for \(silent) s (its time limit is \(request.limits.timeoutSeconds) s); the worker running it was lost",
            step: "stalled-\(last.version)", cause: nil, ifAt: last.version)
    }

    /// Appends the failure unless the run ended meanwhile (or, with `ifAt`, moved on); true if it
    /// did.
    func fail(_ executionID: UUID, reason: String, step: String, cause: IntegrationMessage?, ifAt version: Int64?) async throws -> Bool {
        let stream = CodeExecutionDecider.streamID(executionID)
        let (state, _) = try await handler.load(stream.description)
        guard !state.status.isTerminal, state.request != nil else { return false }
        let failed = CodeExecutionFailed(
            executionID: executionID, attempt: state.attempt, error: reason, output: .empty, exitCode: nil, signal: nil, usage: nil, failedAt: Date())
        let ended = try await handler.end(
            .finish(.failed(failed), attempt: state.attempt), on: stream, commandID: "code-run/\(executionID.uuidString.lowercased())/end/\(step)",
            userID: Self.workerUserID, cause: cause, ifAt: version)
        if ended { logger.warning("sandbox run ended", metadata: ["sandbox.execution.id": "\(executionID)", "reason": "\(reason)"]) }
        return ended
    }
}
