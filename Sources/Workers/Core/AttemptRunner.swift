import Commands
import Events
import Foundation
import Logging

/// The skeleton every run-executing worker shares: load the run, start attempt N through its
/// decider (which admits only the next attempt), do the work, and record exactly one outcome.
///
/// - A redelivered message starts the next attempt; anything a dead attempt might still write is
///   refused by the decider, and a terminal run accepts nothing. So a run ends in one terminal
///   event however often its message is delivered.
/// - A run started `maxAttempts` times ends failed (`exhausted`) instead of starting again.
/// - An outcome the store refuses for its data (`EventStoreError.refused`) would be refused on
///   every redelivery: the run ends failed through `refused`, saying why.
///
/// Command ids are `<prefix>/<run id>/<attempt>/<step>`, so an append repeated after a lost
/// answer is recognised as the same command.
public struct AttemptRunner<D: Decider>: Sendable {
    /// What a module tells the skeleton about its runs.
    public struct Run: Sendable {
        /// Whether the run can take an attempt (it was requested and has not ended).
        public var isOpen: @Sendable (D.State) -> Bool
        public var attempts: @Sendable (D.State) -> Int
        public var maxAttempts: @Sendable (D.State) -> Int
        /// The command that starts attempt `n`.
        public var start: @Sendable (UUID, Int) -> D.Command
        /// The code the decider refuses a start with once every attempt is used.
        public var exhaustedCode: DomainError.Code
        /// The failure recorded when every attempt was used.
        public var exhausted: @Sendable (UUID, D.State, String) -> D.Command

        public init(
            isOpen: @escaping @Sendable (D.State) -> Bool, attempts: @escaping @Sendable (D.State) -> Int,
            maxAttempts: @escaping @Sendable (D.State) -> Int, start: @escaping @Sendable (UUID, Int) -> D.Command,
            exhaustedCode: DomainError.Code, exhausted: @escaping @Sendable (UUID, D.State, String) -> D.Command
        ) {
            self.isOpen = isOpen
            self.attempts = attempts
            self.maxAttempts = maxAttempts
            self.start = start
            self.exhaustedCode = exhaustedCode
            self.exhausted = exhausted
        }
    }

    /// One started attempt: what the work appends through.
    public struct Attempt: Sendable {
        public let runID: UUID
        public let number: Int
        public let stream: StreamID
        public let cause: IntegrationMessage
        /// The runner's logger, with the run's id as metadata.
        public let logger: Logger
        let runner: AttemptRunner

        /// Appends a step of the attempt.
        public func append(_ command: D.Command, step: String) async throws {
            try await runner.append(command, runID: runID, attempt: number, step: step, cause: cause)
        }

        /// Appends an outcome; if the run ended meanwhile (cancelled, failed by the watchdog),
        /// there is nothing to add.
        public func appendOutcome(_ command: D.Command, step: String) async throws {
            do {
                try await append(command, step: step)
            } catch let error as DomainError where error.kind == .conflict {
                runner.logger.info("outcome not recorded: the run already ended", metadata: ["reason": "\(error)"])
            }
        }
    }

    public let handler: CommandHandler<D>
    let run: Run
    let commandPrefix: String
    let userID: String
    /// The log metadata key of a run's id, e.g. `agent.execution.id`.
    let idKey: String
    let logger: Logger

    public init(handler: CommandHandler<D>, run: Run, commandPrefix: String, userID: String, idKey: String, logger: Logger) {
        self.handler = handler
        self.run = run
        self.commandPrefix = commandPrefix
        self.userID = userID
        self.idKey = idKey
        self.logger = logger
    }

    func append(_ command: D.Command, runID: UUID, attempt: Int, step: String, cause: IntegrationMessage) async throws {
        let context = CommandContext(
            commandID: "\(commandPrefix)/\(runID.uuidString.lowercased())/\(attempt)/\(step)", userID: userID, tenantID: cause.tenantID,
            correlationID: cause.correlationID, causationID: cause.eventID.uuidString.lowercased())
        _ = try await handler.handle(command, on: StreamID(category: D.category, id: runID), context: context)
    }

    /// Runs the next attempt of run `id`: `work` does the run and appends its outcome; `refused`
    /// ends it failed when the store refuses what it recorded.
    public func attempt(
        _ id: UUID, cause: IntegrationMessage,
        refused: @Sendable (Attempt, D.State, String) async throws -> Void,
        work: (Attempt, D.State) async throws -> Void
    ) async throws {
        var logger = logger
        logger[metadataKey: idKey] = "\(id)"
        let stream = StreamID(category: D.category, id: id)
        let (state, _) = try await handler.load(stream.description)
        guard run.isOpen(state) else { return }
        let attempt = Attempt(runID: id, number: run.attempts(state) + 1, stream: stream, cause: cause, logger: logger, runner: self)
        do {
            try await attempt.append(run.start(id, attempt.number), step: "start")
        } catch let error as DomainError where error.code == run.exhaustedCode {
            logger.warning("run interrupted too often; failing it", metadata: ["attempts": "\(run.maxAttempts(state))"])
            let reason = "the run was interrupted \(run.maxAttempts(state)) times before it could finish"
            try await attempt.appendOutcome(run.exhausted(id, state, reason), step: "exhausted")
            return
        } catch let error as DomainError {
            logger.info("run not started", metadata: ["reason": "\(error)"])
            return
        }
        do {
            try await work(attempt, state)
        } catch EventStoreError.refused(let reason) {
            logger.error("the run's outcome could not be stored; failing it", metadata: ["reason": "\(reason)"])
            try await refused(attempt, state, "the run's outcome could not be stored: \(reason)")
        }
    }
}
