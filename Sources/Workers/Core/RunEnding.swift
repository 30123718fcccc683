import Commands
import Events
import Foundation
import Logging

/// How a module's runs are ended from outside a request, with a failure that says why: a work
/// message given up after its last try (the `Worker`'s give-up hook), or a run whose stream has
/// been silent past its time limit plus a grace (the `RunWatchdog`). One per module; the module
/// says what an open run's limit is and which command fails it.
public struct RunEnding<D: Decider>: Sendable {
    let handler: CommandHandler<D>
    /// The run's time limit in seconds while it is open; nil once it ended, or if it does not exist.
    let openLimit: @Sendable (D.State) -> Int?
    /// Whether an attempt has started.
    let started: @Sendable (D.State) -> Bool
    /// The command that fails the open run with `reason`.
    let failure: @Sendable (UUID, D.State, String) -> D.Command?
    /// Command ids are `<prefix>/<run id>/end/<step>`, so a repeat is recognised.
    let commandPrefix: String
    let userID: String
    /// The code of a work message that names no run.
    let malformedCode: DomainError.Code
    let logger: Logger

    public init(
        handler: CommandHandler<D>, commandPrefix: String, userID: String, malformedCode: DomainError.Code, logger: Logger,
        openLimit: @escaping @Sendable (D.State) -> Int?, started: @escaping @Sendable (D.State) -> Bool,
        failure: @escaping @Sendable (UUID, D.State, String) -> D.Command?
    ) {
        self.handler = handler
        self.openLimit = openLimit
        self.started = started
        self.failure = failure
        self.commandPrefix = commandPrefix
        self.userID = userID
        self.malformedCode = malformedCode
        self.logger = logger
    }

    static func stream(_ id: UUID) -> StreamID { StreamID(category: D.category, id: id) }

    /// The `Worker`'s give-up hook: the run the item carried ends failed. A malformed message
    /// names no run: there is nothing to end.
    public func giveUp(_ item: WorkItem, after error: any Error) async throws {
        guard let (message, id) = try? item.requestedExecution(code: malformedCode) else { return }
        _ = try await fail(id, reason: "the run could not be completed: its work was given up after \(item.attempt) tries", step: "given-up", cause: message, ifAt: nil)
    }

    /// The watchdog's check: fails the run if its stream has been silent for longer than the
    /// policy allows (a started run: its time limit plus the grace; a run never started: the
    /// pending grace); true if it did.
    public func failIfStalled(_ id: UUID, policy: StallPolicy, now: Date) async throws -> Bool {
        let stream = Self.stream(id).description
        let (state, _) = try await handler.load(stream)
        guard let limit = openLimit(state), let last = try await handler.lastProgress(stream) else { return false }
        let running = started(state)
        let allowed = running ? Double(limit) + Double(policy.grace.components.seconds) : Double(policy.pendingGrace.components.seconds)
        let silent = now.timeIntervalSince(last.at)
        guard silent > allowed else { return false }
        let reason =
            running
            ? "the run made no progress for \(Int(silent)) s (its time limit is \(limit) s); the worker running it was lost"
            : "the run was not started within \(Int(silent)) s of its request; no worker could take it"
        return try await fail(id, reason: reason, step: "stalled-\(last.version)", cause: nil, ifAt: last.version, loaded: state)
    }

    /// Appends the failure unless the run ended meanwhile (or, with `ifAt`, moved on); true if it
    /// did. `loaded`: the state the caller already read (at `ifAt`), so it is not read twice.
    public func fail(
        _ id: UUID, reason: String, step: String, cause: IntegrationMessage?, ifAt version: Int64?, loaded: D.State? = nil
    ) async throws -> Bool {
        let stream = Self.stream(id)
        let state: D.State
        if let loaded { state = loaded } else { (state, _) = try await handler.load(stream.description) }
        guard openLimit(state) != nil, let command = failure(id, state, reason) else { return false }
        let ended = try await handler.end(
            command, on: stream, commandID: "\(commandPrefix)/\(id.uuidString.lowercased())/end/\(step)", userID: userID, cause: cause, ifAt: version)
        if ended { logger.warning("run ended", metadata: ["run.stream": "\(stream)", "reason": "\(reason)"]) }
        return ended
    }
}
