import Foundation

/// Tokens a model call (or a whole run) used.
public struct TokenUsage: Codable, Sendable, Equatable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int { promptTokens + completionTokens }

    public init(promptTokens: Int = 0, completionTokens: Int = 0) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
    }

    public static func + (lhs: TokenUsage, rhs: TokenUsage) -> TokenUsage {
        TokenUsage(promptTokens: lhs.promptTokens + rhs.promptTokens, completionTokens: lhs.completionTokens + rhs.completionTokens)
    }

    enum CodingKeys: String, CodingKey { case promptTokens, completionTokens, totalTokens }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        promptTokens = try container.decode(Int.self, forKey: .promptTokens)
        completionTokens = try container.decode(Int.self, forKey: .completionTokens)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(promptTokens, forKey: .promptTokens)
        try container.encode(completionTokens, forKey: .completionTokens)
        try container.encode(totalTokens, forKey: .totalTokens)
    }
}

/// The persona a run speaks as, resolved and rendered when the run was requested: the version
/// a label pointed at then, and the exact prompt, so the run and its replay never depend on
/// later moves or versions.
public struct AgentExecutionPersona: Codable, Sendable, Equatable {
    public var personaID: UUID
    public var version: Int
    public var label: String?
    public var templateHash: String
    public var renderedPrompt: String

    public init(personaID: UUID, version: Int, label: String?, templateHash: String, renderedPrompt: String) {
        self.personaID = personaID
        self.version = version
        self.label = label
        self.templateHash = templateHash
        self.renderedPrompt = renderedPrompt
    }

    enum CodingKeys: String, CodingKey {
        case personaID = "personaId"
        case version, label, templateHash, renderedPrompt
    }
}

/// A run of an agent was asked for. It carries what the run needs from the agent as it was at
/// that moment (instructions, settings, plugins), so the run and its replay never depend on later
/// changes to the agent.
public struct AgentExecutionRequested: DomainEvent {
    public static let eventType = "AgentExecutionRequested"

    public var executionID: UUID
    public var agentID: UUID
    public var ownerID: String
    public var input: String
    public var parameters: [String: JSONValue]
    public var instructions: String
    public var settings: AgentModelSettings
    public var plugins: [String]
    public var timeoutSeconds: Int
    public var maxAttempts: Int
    public var requestedAt: Date
    /// The agent's persona, rendered with the run's parameters; absent when it has none.
    public var persona: AgentExecutionPersona?
    /// Set when the run is a fork of another from one of its model calls.
    public var fork: AgentExecutionFork?

    public init(
        executionID: UUID, agentID: UUID, ownerID: String, input: String, parameters: [String: JSONValue], instructions: String,
        settings: AgentModelSettings, plugins: [String], timeoutSeconds: Int, maxAttempts: Int, requestedAt: Date,
        persona: AgentExecutionPersona? = nil, fork: AgentExecutionFork? = nil
    ) {
        self.persona = persona
        self.fork = fork
        self.executionID = executionID
        self.agentID = agentID
        self.ownerID = ownerID
        self.input = input
        self.parameters = parameters
        self.instructions = instructions
        self.settings = settings
        self.plugins = plugins
        self.timeoutSeconds = timeoutSeconds
        self.maxAttempts = maxAttempts
        self.requestedAt = requestedAt
    }

    enum CodingKeys: String, CodingKey {
        case executionID = "executionId"
        case agentID = "agentId"
        case ownerID = "ownerId"
        case input, parameters, instructions, settings, plugins, timeoutSeconds, maxAttempts, requestedAt, persona, fork
    }
}

/// A run forked from another one's model call `fromCall`: it starts from the conversation as that
/// call was asked (what the model had said and the tools had answered before it), with this
/// run's own system messages (instructions, persona), and goes on with its own model.
public struct AgentExecutionFork: Codable, Sendable, Equatable {
    public var originExecutionID: UUID
    public var fromCall: Int
    /// The chat messages the run starts with, in the OpenAI shape.
    public var messages: JSONValue

    public init(originExecutionID: UUID, fromCall: Int, messages: JSONValue) {
        self.originExecutionID = originExecutionID
        self.fromCall = fromCall
        self.messages = messages
    }

    enum CodingKeys: String, CodingKey {
        case originExecutionID = "originExecutionId"
        case fromCall, messages
    }
}

/// A worker began an attempt at the run. A later attempt (after a worker died) supersedes it.
public struct AgentExecutionStarted: DomainEvent {
    public static let eventType = "AgentExecutionStarted"

    public var executionID: UUID
    public var agentID: UUID
    public var attempt: Int
    public var startedAt: Date

    public init(executionID: UUID, agentID: UUID, attempt: Int, startedAt: Date) {
        self.executionID = executionID
        self.agentID = agentID
        self.attempt = attempt
        self.startedAt = startedAt
    }

    enum CodingKeys: String, CodingKey {
        case executionID = "executionId"
        case agentID = "agentId"
        case attempt, startedAt
    }
}

/// One call to the language model, recorded whole (request, response and usage) so the run can
/// be replayed without the model.
public struct AgentLLMCallRecorded: DomainEvent {
    public static let eventType = "AgentLLMCallRecorded"

    public var executionID: UUID
    public var agentID: UUID
    public var attempt: Int
    /// 1 for the first call of the attempt.
    public var step: Int
    /// The model that answered, as it named itself (`offline` for the offline model).
    public var model: String
    public var request: JSONValue
    public var response: JSONValue
    public var usage: TokenUsage
    public var cost: Double
    public var durationMs: Int
    public var recordedAt: Date

    public init(
        executionID: UUID, agentID: UUID, attempt: Int, step: Int, model: String, request: JSONValue, response: JSONValue,
        usage: TokenUsage, cost: Double, durationMs: Int, recordedAt: Date
    ) {
        self.executionID = executionID
        self.agentID = agentID
        self.attempt = attempt
        self.step = step
        self.model = model
        self.request = request
        self.response = response
        self.usage = usage
        self.cost = cost
        self.durationMs = durationMs
        self.recordedAt = recordedAt
    }

    enum CodingKeys: String, CodingKey {
        case executionID = "executionId"
        case agentID = "agentId"
        case attempt, step, model, request, response, usage, cost, durationMs, recordedAt
    }
}

/// The model asked for a tool and the worker ran it; the result went back to the model.
public struct AgentToolInvoked: DomainEvent {
    public static let eventType = "AgentToolInvoked"

    public var executionID: UUID
    public var agentID: UUID
    public var attempt: Int
    public var step: Int
    /// The model's id for the call, echoed back with the result.
    public var callID: String
    public var tool: String
    public var arguments: String
    public var result: String
    public var isError: Bool
    public var invokedAt: Date

    public init(
        executionID: UUID, agentID: UUID, attempt: Int, step: Int, callID: String, tool: String, arguments: String, result: String,
        isError: Bool, invokedAt: Date
    ) {
        self.executionID = executionID
        self.agentID = agentID
        self.attempt = attempt
        self.step = step
        self.callID = callID
        self.tool = tool
        self.arguments = arguments
        self.result = result
        self.isError = isError
        self.invokedAt = invokedAt
    }

    enum CodingKeys: String, CodingKey {
        case executionID = "executionId"
        case agentID = "agentId"
        case callID = "callId"
        case attempt, step, tool, arguments, result, isError, invokedAt
    }
}

/// The run finished with an answer. Terminal.
public struct AgentExecutionCompleted: DomainEvent {
    public static let eventType = "AgentExecutionCompleted"

    public var executionID: UUID
    public var agentID: UUID
    public var output: String
    public var model: String
    /// Summed over every model call of the successful attempt.
    public var tokensUsed: TokenUsage
    public var cost: Double
    public var durationMs: Int
    public var completedAt: Date

    public init(
        executionID: UUID, agentID: UUID, output: String, model: String, tokensUsed: TokenUsage, cost: Double, durationMs: Int,
        completedAt: Date
    ) {
        self.executionID = executionID
        self.agentID = agentID
        self.output = output
        self.model = model
        self.tokensUsed = tokensUsed
        self.cost = cost
        self.durationMs = durationMs
        self.completedAt = completedAt
    }

    enum CodingKeys: String, CodingKey {
        case executionID = "executionId"
        case agentID = "agentId"
        case output, model, tokensUsed, cost, durationMs, completedAt
    }
}

/// The run ended without an answer. Terminal. `retryable` says whether asking again may succeed
/// (the model was unavailable) or not (the request itself was refused).
public struct AgentExecutionFailed: DomainEvent {
    public static let eventType = "AgentExecutionFailed"

    public var executionID: UUID
    public var agentID: UUID
    public var error: String
    public var attempt: Int
    public var retryable: Bool
    public var failedAt: Date

    public init(executionID: UUID, agentID: UUID, error: String, attempt: Int, retryable: Bool, failedAt: Date) {
        self.executionID = executionID
        self.agentID = agentID
        self.error = error
        self.attempt = attempt
        self.retryable = retryable
        self.failedAt = failedAt
    }

    enum CodingKeys: String, CodingKey {
        case executionID = "executionId"
        case agentID = "agentId"
        case error, attempt, retryable, failedAt
    }
}

/// The owner cancelled the run while it was pending or running. Terminal.
public struct AgentExecutionCancelled: DomainEvent {
    public static let eventType = "AgentExecutionCancelled"

    public var executionID: UUID
    public var agentID: UUID
    public var cancelledAt: Date

    public init(executionID: UUID, agentID: UUID, cancelledAt: Date) {
        self.executionID = executionID
        self.agentID = agentID
        self.cancelledAt = cancelledAt
    }

    enum CodingKeys: String, CodingKey {
        case executionID = "executionId"
        case agentID = "agentId"
        case cancelledAt
    }
}

/// The run passed its time limit. Terminal; its status reads `failed`.
public struct AgentExecutionTimedOut: DomainEvent {
    public static let eventType = "AgentExecutionTimedOut"

    public var executionID: UUID
    public var agentID: UUID
    public var timeoutSeconds: Int
    public var timedOutAt: Date

    public init(executionID: UUID, agentID: UUID, timeoutSeconds: Int, timedOutAt: Date) {
        self.executionID = executionID
        self.agentID = agentID
        self.timeoutSeconds = timeoutSeconds
        self.timedOutAt = timedOutAt
    }

    enum CodingKeys: String, CodingKey {
        case executionID = "executionId"
        case agentID = "agentId"
        case timeoutSeconds, timedOutAt
    }
}

/// The events of one agent execution (stream `agentexecution-<id>`).
public enum AgentExecutionEvent: EventFamily, Equatable {
    public static var registry: EventRegistry { .agentExecutions }

    case requested(AgentExecutionRequested)
    case started(AgentExecutionStarted)
    case llmCallRecorded(AgentLLMCallRecorded)
    case toolInvoked(AgentToolInvoked)
    case completed(AgentExecutionCompleted)
    case failed(AgentExecutionFailed)
    case cancelled(AgentExecutionCancelled)
    case timedOut(AgentExecutionTimedOut)

    public var payload: any DomainEvent {
        switch self {
        case .requested(let event): event
        case .started(let event): event
        case .llmCallRecorded(let event): event
        case .toolInvoked(let event): event
        case .completed(let event): event
        case .failed(let event): event
        case .cancelled(let event): event
        case .timedOut(let event): event
        }
    }

    public init?(payload: any DomainEvent) {
        switch payload {
        case let event as AgentExecutionRequested: self = .requested(event)
        case let event as AgentExecutionStarted: self = .started(event)
        case let event as AgentLLMCallRecorded: self = .llmCallRecorded(event)
        case let event as AgentToolInvoked: self = .toolInvoked(event)
        case let event as AgentExecutionCompleted: self = .completed(event)
        case let event as AgentExecutionFailed: self = .failed(event)
        case let event as AgentExecutionCancelled: self = .cancelled(event)
        case let event as AgentExecutionTimedOut: self = .timedOut(event)
        default: return nil
        }
    }

    /// Every execution event names its agent.
    public var agentID: UUID {
        switch self {
        case .requested(let e): e.agentID
        case .started(let e): e.agentID
        case .llmCallRecorded(let e): e.agentID
        case .toolInvoked(let e): e.agentID
        case .completed(let e): e.agentID
        case .failed(let e): e.agentID
        case .cancelled(let e): e.agentID
        case .timedOut(let e): e.agentID
        }
    }

    /// And its execution.
    public var executionID: UUID {
        switch self {
        case .requested(let e): e.executionID
        case .started(let e): e.executionID
        case .llmCallRecorded(let e): e.executionID
        case .toolInvoked(let e): e.executionID
        case .completed(let e): e.executionID
        case .failed(let e): e.executionID
        case .cancelled(let e): e.executionID
        case .timedOut(let e): e.executionID
        }
    }
}

extension EventRegistry {
    /// The stored event types of agent executions.
    public static let agentExecutions: EventRegistry = {
        var registry = EventRegistry()
        registry.register(AgentExecutionRequested.self)
        registry.register(AgentExecutionStarted.self)
        registry.register(AgentLLMCallRecorded.self)
        registry.register(AgentToolInvoked.self)
        registry.register(AgentExecutionCompleted.self)
        registry.register(AgentExecutionFailed.self)
        registry.register(AgentExecutionCancelled.self)
        registry.register(AgentExecutionTimedOut.self)
        return registry
    }()
}

extension Array where Element == AgentExecutionEvent {
    /// A run's last attempt (0 before any started) and the model calls it recorded, in order:
    /// what a replay answers from and a fork starts from.
    public var lastAttemptCalls: (attempt: Int, calls: [AgentLLMCallRecorded]) {
        let attempt = compactMap { if case .started(let started) = $0 { started.attempt } else { nil } }.max() ?? 0
        return (attempt, compactMap { if case .llmCallRecorded(let call) = $0, call.attempt == attempt { call } else { nil } })
    }
}
