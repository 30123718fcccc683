import Events
import Foundation

/// One run of an agent (stream `agentexecution-<id>`): pending → running → completed, failed or
/// cancelled. Terminal states accept nothing; cancel only from pending or running; attempts are
/// bounded; and only the current attempt may record calls or an outcome, so a worker that lost
/// its attempt (it was presumed dead and the run restarted) cannot write over the new one.
public enum AgentExecutionDecider: Decider {
    public enum Command: Sendable, Equatable {
        case request(RequestAgentExecution)
        case fork(ForkAgentExecution)
        case start(StartAgentExecution)
        case recordLLMCall(AgentLLMCallRecorded)
        case recordToolInvocation(AgentToolInvoked)
        case complete(AgentExecutionCompleted, attempt: Int)
        case fail(AgentExecutionFailed)
        case timeOut(AgentExecutionTimedOut, attempt: Int)
        case cancel(CancelAgentExecution)
    }

    public enum Status: String, Sendable, Codable {
        case absent, pending, running, completed, failed, cancelled

        public var isTerminal: Bool { self == .completed || self == .failed || self == .cancelled }
    }

    public struct State: Sendable, Equatable {
        public var status: Status = .absent
        public var agentID: UUID?
        public var ownerID: String?
        public var attempt = 0
        public var maxAttempts = 0
        public var timeoutSeconds = 0
        public var request: AgentExecutionRequested?
    }

    public static let category = "agentexecution"
    public static let initialState = State()

    public static func streamID(_ executionID: UUID) -> StreamID { StreamID(category: category, id: executionID) }

    public static func decide(_ command: Command, state: State) throws -> [AgentExecutionEvent] {
        switch command {
        case .request(let request):
            guard state.status == .absent else {
                throw DomainError(.conflict, code: .executionExists, "execution \(request.executionID) already exists")
            }
            return [.requested(try request.event())]
        case .fork(let fork):
            guard state.status == .absent else {
                throw DomainError(.conflict, code: .executionExists, "execution \(fork.executionID) already exists")
            }
            return [.requested(try fork.event())]
        case .start(let start):
            guard state.status != .absent else { throw notFound }
            try requireNotTerminal(state)
            guard start.attempt == state.attempt + 1 else {
                throw DomainError(.conflict, code: .executionAttemptStale, "attempt \(start.attempt) is not the next one (\(state.attempt + 1))")
            }
            guard start.attempt <= state.maxAttempts else {
                throw DomainError(.conflict, code: .executionAttemptsExhausted, "the run was started \(state.maxAttempts) times already")
            }
            return [.started(AgentExecutionStarted(executionID: start.executionID, agentID: state.agentID!, attempt: start.attempt, startedAt: start.now))]
        case .recordLLMCall(let call):
            try requireRunning(state, attempt: call.attempt)
            return [.llmCallRecorded(call)]
        case .recordToolInvocation(let tool):
            try requireRunning(state, attempt: tool.attempt)
            return [.toolInvoked(tool)]
        case .complete(let completed, let attempt):
            try requireRunning(state, attempt: attempt)
            return [.completed(completed)]
        case .fail(let failed):
            // A run may fail before it starts (e.g. its attempts ran out while pending).
            guard state.status != .absent else { throw notFound }
            try requireNotTerminal(state)
            if state.status == .running, failed.attempt != state.attempt { throw staleAttempt(failed.attempt, state) }
            return [.failed(failed)]
        case .timeOut(let timedOut, let attempt):
            try requireRunning(state, attempt: attempt)
            return [.timedOut(timedOut)]
        case .cancel(let cancel):
            guard state.status != .absent else { throw notFound }
            try requireNotTerminal(state)
            return [.cancelled(AgentExecutionCancelled(executionID: cancel.executionID, agentID: state.agentID!, cancelledAt: cancel.now))]
        }
    }

    public static func evolve(_ state: State, _ event: AgentExecutionEvent) -> State {
        var state = state
        switch event {
        case .requested(let requested):
            state.status = .pending
            state.agentID = requested.agentID
            state.ownerID = requested.ownerID
            state.maxAttempts = requested.maxAttempts
            state.timeoutSeconds = requested.timeoutSeconds
            state.request = requested
        case .started(let started):
            state.status = .running
            state.attempt = started.attempt
        case .llmCallRecorded, .toolInvoked:
            break
        case .completed:
            state.status = .completed
        case .failed, .timedOut:
            state.status = .failed
        case .cancelled:
            state.status = .cancelled
        }
        return state
    }

    static let notFound = DomainError(.notFound, code: .executionNotFound, "execution not found")

    static func requireNotTerminal(_ state: State) throws {
        guard !state.status.isTerminal else {
            throw DomainError(.conflict, code: .executionTerminal, "the execution already ended (\(state.status.rawValue))")
        }
    }

    static func requireRunning(_ state: State, attempt: Int) throws {
        guard state.status != .absent else { throw notFound }
        try requireNotTerminal(state)
        guard state.status == .running else {
            throw DomainError(.conflict, code: .executionNotRunning, "the execution has not started")
        }
        guard attempt == state.attempt else { throw staleAttempt(attempt, state) }
    }

    static func staleAttempt(_ attempt: Int, _ state: State) -> DomainError {
        DomainError(.conflict, code: .executionAttemptStale, "attempt \(attempt) was superseded by attempt \(state.attempt)")
    }
}

/// Ask for a run of an agent. `agent` is the agent's state as loaded by the handler: the run
/// takes its instructions, settings and plugins from it.
public struct RequestAgentExecution: Sendable, Equatable {
    public static let maxInputCharacters = 32_000
    public static let input = TextLimit(characters: 0...maxInputCharacters)
    public static let maxParametersBytes = 16_384

    public var executionID: UUID
    public var agentID: UUID
    public var agent: AgentDecider.State
    public var input: String
    public var parameters: [String: JSONValue]
    public var timeoutSeconds: Int
    public var maxAttempts: Int
    /// The agent's persona as resolved and rendered by the caller (looked-up data).
    public var persona: AgentExecutionPersona?
    public var now: Date

    public init(
        executionID: UUID, agentID: UUID, agent: AgentDecider.State, input: String, parameters: [String: JSONValue] = [:],
        timeoutSeconds: Int = 300, maxAttempts: Int = 3, persona: AgentExecutionPersona? = nil, now: Date
    ) {
        self.persona = persona
        self.executionID = executionID
        self.agentID = agentID
        self.agent = agent
        self.input = input
        self.parameters = parameters
        self.timeoutSeconds = timeoutSeconds
        self.maxAttempts = maxAttempts
        self.now = now
    }

    func event() throws -> AgentExecutionRequested {
        try AgentDecider.requireActive(agent)
        guard let owner = agent.ownerID, let settings = agent.settings else {
            throw DomainError(.notFound, code: .agentNotFound, "agent not found")
        }
        guard !input.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw DomainError(.invalid, code: .executionInputEmpty, "input must not be empty")
        }
        try Self.input.check(input, field: "input", code: .executionInputTooLong)
        let parameterBytes = (try? EventCoding.encode(parameters).count) ?? .max
        guard parameterBytes <= Self.maxParametersBytes else {
            throw DomainError(.invalid, code: .executionParametersTooLarge, "parameters must be at most \(Self.maxParametersBytes) bytes of JSON")
        }
        guard (1...3600).contains(timeoutSeconds) else {
            throw DomainError(.invalid, code: .executionTimeoutRange, "timeout_seconds must be between 1 and 3600")
        }
        guard (1...10).contains(maxAttempts) else {
            throw DomainError(.invalid, code: .executionAttemptsRange, "max attempts must be between 1 and 10")
        }
        return AgentExecutionRequested(
            executionID: executionID, agentID: agentID, ownerID: owner, input: input, parameters: parameters,
            instructions: agent.instructions ?? "", settings: settings, plugins: agent.plugins, timeoutSeconds: timeoutSeconds,
            maxAttempts: maxAttempts, requestedAt: now, persona: persona)
    }
}

/// A new run forked from a recorded one at its model call `fromCall` (1-based, in its last
/// attempt), optionally with another model, other instructions or another persona. It is a
/// normal run: the same input, parameters, plugins and limits as its origin, starting from the
/// conversation as the origin's call `fromCall` was asked, its system messages this run's own.
public struct ForkAgentExecution: Sendable, Equatable {
    public var executionID: UUID
    public var origin: AgentExecutionRequested
    /// The origin's recorded calls (its last attempt's), in order.
    public var originCalls: [AgentLLMCallRecorded]
    public var fromCall: Int
    public var model: String?
    public var instructions: String?
    /// Another persona, rendered by the caller; nil keeps the origin's.
    public var persona: AgentExecutionPersona?
    public var now: Date

    public init(
        executionID: UUID, origin: AgentExecutionRequested, originCalls: [AgentLLMCallRecorded], fromCall: Int, model: String? = nil,
        instructions: String? = nil, persona: AgentExecutionPersona? = nil, now: Date
    ) {
        self.executionID = executionID
        self.origin = origin
        self.originCalls = originCalls
        self.fromCall = fromCall
        self.model = model
        self.instructions = instructions
        self.persona = persona
        self.now = now
    }

    func event() throws -> AgentExecutionRequested {
        guard (1...max(1, originCalls.count)).contains(fromCall), fromCall <= originCalls.count else {
            throw DomainError(
                .invalid, code: .executionForkCall,
                "from_call must be from 1 to \(originCalls.count), the model calls the run recorded in its last attempt")
        }
        var settings = origin.settings
        if let model { settings.model = model }
        try AgentRules.validate(settings)
        let instructions = instructions ?? origin.instructions
        try AgentRules.validate(instructions: instructions)
        let persona = persona ?? origin.persona
        // The conversation as call `fromCall` was asked, without its leading system messages.
        guard case .object(let asked) = originCalls[fromCall - 1].request, case .array(let recorded)? = asked["messages"] else {
            throw DomainError(.invalid, code: .executionForkCall, "the recorded call \(fromCall) has no messages to start from")
        }
        let conversation = recorded.drop { message in
            if case .object(let fields) = message, fields["role"] == .string("system") { return true }
            return false
        }
        var system: [JSONValue] = []
        if let persona { system.append(.object(["role": .string("system"), "content": .string(persona.renderedPrompt)])) }
        if !instructions.isEmpty { system.append(.object(["role": .string("system"), "content": .string(instructions)])) }
        return AgentExecutionRequested(
            executionID: executionID, agentID: origin.agentID, ownerID: origin.ownerID, input: origin.input, parameters: origin.parameters,
            instructions: instructions, settings: settings, plugins: origin.plugins, timeoutSeconds: origin.timeoutSeconds,
            maxAttempts: origin.maxAttempts, requestedAt: now, persona: persona,
            fork: AgentExecutionFork(originExecutionID: origin.executionID, fromCall: fromCall, messages: .array(system + conversation)))
    }
}

/// A worker begins attempt `attempt` (1 for the first).
public struct StartAgentExecution: Sendable, Equatable {
    public var executionID: UUID
    public var attempt: Int
    public var now: Date

    public init(executionID: UUID, attempt: Int, now: Date) {
        self.executionID = executionID
        self.attempt = attempt
        self.now = now
    }
}

/// The owner stops a pending or running execution.
public struct CancelAgentExecution: Sendable, Equatable {
    public var executionID: UUID
    public var now: Date

    public init(executionID: UUID, now: Date) {
        self.executionID = executionID
        self.now = now
    }
}
