import Events
import Foundation

/// One sandboxed run (stream `codeexecution-<id>`): pending → running → completed, failed,
/// timed out or over a limit. Terminal states accept nothing; attempts are bounded; only the
/// current attempt may record the outcome, so a worker presumed dead cannot overwrite the run
/// its successor made.
public enum CodeExecutionDecider: Decider {
    public enum Command: Sendable, Equatable {
        case request(RequestCodeExecution)
        case start(executionID: UUID, attempt: Int, now: Date)
        /// An outcome event (completed, failed, timedOut or limitExceeded) of `attempt`.
        case finish(CodeExecutionEvent, attempt: Int)
    }

    public enum Status: String, Sendable, Codable {
        case absent, pending, running, completed, failed, timedOut = "timed_out", limitExceeded = "limit_exceeded"

        public var isTerminal: Bool { ![.absent, .pending, .running].contains(self) }
    }

    public struct State: Sendable, Equatable {
        public var status: Status = .absent
        public var attempt = 0
        public var request: CodeExecutionRequested?
    }

    public static let category = "codeexecution"
    public static let initialState = State()
    public static let languages = ["python"]

    public static func streamID(_ executionID: UUID) -> StreamID { StreamID(category: category, id: executionID) }

    public static func decide(_ command: Command, state: State) throws -> [CodeExecutionEvent] {
        switch command {
        case .request(let request):
            guard state.status == .absent else {
                throw DomainError(.conflict, code: .sandboxExecutionExists, "execution \(request.executionID) already exists")
            }
            return [.requested(try request.event())]
        case .start(let executionID, let attempt, let now):
            guard let request = state.request else { throw notFound }
            try requireNotTerminal(state)
            guard attempt == state.attempt + 1 else {
                throw DomainError(.conflict, code: .sandboxAttemptStale, "attempt \(attempt) is not the next one (\(state.attempt + 1))")
            }
            guard attempt <= request.maxAttempts else {
                throw DomainError(.conflict, code: .sandboxAttemptsExhausted, "the run was started \(request.maxAttempts) times already")
            }
            return [.started(CodeExecutionStarted(executionID: executionID, attempt: attempt, startedAt: now))]
        case .finish(let outcome, let attempt):
            guard state.status != .absent else { throw notFound }
            try requireNotTerminal(state)
            switch outcome {
            case .requested, .started:
                throw DomainError(.invalid, code: .sandboxNotAnOutcome, "\(outcome.payload.eventTypeName) does not end a run")
            case .failed:
                // A run may fail before any attempt started (its attempts ran out while pending).
                if state.status == .running, attempt != state.attempt { throw staleAttempt(attempt, state) }
            case .completed, .timedOut, .limitExceeded:
                guard state.status == .running else {
                    throw DomainError(.conflict, code: .sandboxNotRunning, "the execution has not started")
                }
                guard attempt == state.attempt else { throw staleAttempt(attempt, state) }
            }
            return [outcome]
        }
    }

    public static func evolve(_ state: State, _ event: CodeExecutionEvent) -> State {
        var state = state
        switch event {
        case .requested(let requested):
            state.status = .pending
            state.request = requested
        case .started(let started):
            state.status = .running
            state.attempt = started.attempt
        case .completed: state.status = .completed
        case .failed: state.status = .failed
        case .timedOut: state.status = .timedOut
        case .limitExceeded: state.status = .limitExceeded
        }
        return state
    }

    static let notFound = DomainError(.notFound, code: .sandboxExecutionNotFound, "execution not found")

    static func requireNotTerminal(_ state: State) throws {
        guard !state.status.isTerminal else {
            throw DomainError(.conflict, code: .sandboxExecutionTerminal, "the execution already ended (\(state.status.rawValue))")
        }
    }

    static func staleAttempt(_ attempt: Int, _ state: State) -> DomainError {
        DomainError(.conflict, code: .sandboxAttemptStale, "attempt \(attempt) was superseded by attempt \(state.attempt)")
    }
}

extension DomainEvent {
    var eventTypeName: String { Self.eventType }
}

/// Ask for a sandboxed run. The limits are the configured ones with the caller's wall time.
public struct RequestCodeExecution: Sendable, Equatable {
    public var executionID: UUID
    public var ownerID: String
    public var language: String
    public var code: String
    public var limits: SandboxLimits
    /// The most a caller may ask for (the configured maximum, 30 s by default).
    public var maxTimeoutSeconds: Int
    public var maxCodeBytes: Int
    public var maxAttempts: Int
    public var now: Date

    public init(
        executionID: UUID, ownerID: String, language: String, code: String, limits: SandboxLimits, maxTimeoutSeconds: Int = 30,
        maxCodeBytes: Int = 64 << 10, maxAttempts: Int = 2, now: Date
    ) {
        self.executionID = executionID
        self.ownerID = ownerID
        self.language = language
        self.code = code
        self.limits = limits
        self.maxTimeoutSeconds = maxTimeoutSeconds
        self.maxCodeBytes = maxCodeBytes
        self.maxAttempts = maxAttempts
        self.now = now
    }

    func event() throws -> CodeExecutionRequested {
        guard CodeExecutionDecider.languages.contains(language) else {
            throw DomainError(
                .invalid, code: .sandboxLanguageUnsupported,
                "language '\(language.prefix(40))' is not supported; supported: \(CodeExecutionDecider.languages.joined(separator: ", "))")
        }
        guard !code.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw DomainError(.invalid, code: .sandboxCodeEmpty, "code must not be empty")
        }
        guard code.utf8.count <= maxCodeBytes else {
            throw DomainError(.tooLarge, code: .sandboxCodeTooLarge, "code must be at most \(maxCodeBytes) bytes")
        }
        guard (1...maxTimeoutSeconds).contains(limits.timeoutSeconds) else {
            throw DomainError(.invalid, code: .sandboxTimeoutRange, "timeout_seconds must be between 1 and \(maxTimeoutSeconds)")
        }
        guard (1...10).contains(maxAttempts) else {
            throw DomainError(.invalid, code: .sandboxAttemptsRange, "max attempts must be between 1 and 10")
        }
        return CodeExecutionRequested(
            executionID: executionID, ownerID: ownerID, language: language, code: code, limits: limits, maxAttempts: maxAttempts,
            requestedAt: now)
    }
}
