import Commands
import Events
import Foundation
import Logging

/// Runs agent executions handed out through `agent.execute`: starts an attempt, loops model →
/// tools → model (each call and tool recorded as an event), and appends exactly one outcome.
/// While it runs it watches the execution's stream, so a cancel stops it between, or during, model
/// calls; and it stops at the run's time limit.
///
/// Every append goes through the execution's command handler, and the decider admits only the
/// current attempt: after a crash, the redelivered message starts the next attempt, and anything
/// the dead attempt might still write is refused. A terminal state accepts nothing, so a run ends
/// in exactly one terminal event however often its message is delivered.
public struct AgentExecutionRunner: Sendable {
    public struct Configuration: Sendable {
        /// Model calls per attempt, tool round trips included.
        public var maxSteps: Int
        /// How often a running execution checks whether it was cancelled.
        public var cancellationPoll: Duration

        public init(maxSteps: Int = 8, cancellationPoll: Duration = .milliseconds(200)) {
            self.maxSteps = max(1, maxSteps)
            self.cancellationPoll = cancellationPoll
        }
    }

    /// Who the worker's events say caused them.
    public static let workerUserID = "system:agent-worker"

    let handler: CommandHandler<AgentExecutionDecider>
    let model: any LanguageModel
    let prices: ModelPrices
    let configuration: Configuration
    /// Runs the `sandbox.python` tool, under these limits; nil where no sandbox is configured.
    let sandbox: (runner: any SandboxRunner, limits: SandboxLimits)?
    /// Answers the `knowledge.search` tool; nil where the Knowledge module is not assembled.
    let knowledge: KnowledgeSearchTool?
    let logger: Logger

    public init(
        store: any EventStore, model: any LanguageModel, prices: ModelPrices = .defaults, configuration: Configuration = .init(),
        sandbox: (runner: any SandboxRunner, limits: SandboxLimits)? = nil, knowledge: KnowledgeSearchTool? = nil, logger: Logger
    ) {
        self.knowledge = knowledge
        handler = CommandHandler(store: store)
        self.model = model
        self.prices = prices
        self.configuration = configuration
        self.sandbox = sandbox
        self.logger = logger
    }

    /// The worker's handler: the message is the relayed `AgentExecutionRequested`.
    public func handle(_ item: WorkItem) async throws {
        let (message, executionID) = try item.requestedExecution(code: .executionMessageMalformed)
        try await run(executionID, cause: message)
    }

    enum Ending: Sendable { case finished, cancelled, timedOut }

    /// The attempt skeleton, told what an agent run is.
    var attempts: AttemptRunner<AgentExecutionDecider> {
        AttemptRunner(
            handler: handler,
            run: .init(
                isOpen: { $0.request != nil && !$0.status.isTerminal }, attempts: \.attempt, maxAttempts: \.maxAttempts,
                start: { id, attempt in .start(StartAgentExecution(executionID: id, attempt: attempt, now: Date())) },
                exhaustedCode: .executionAttemptsExhausted,
                exhausted: { id, state, reason in
                    .fail(AgentExecutionFailed(
                        executionID: id, agentID: state.request?.agentID ?? UUID(), error: reason, attempt: state.attempt, retryable: true,
                        failedAt: Date()))
                }),
            commandPrefix: "agent-run", userID: Self.workerUserID, idKey: "agent.execution.id", logger: logger)
    }

    func run(_ executionID: UUID, cause: IntegrationMessage) async throws {
        try await attempts.attempt(
            executionID, cause: cause,
            refused: { attempt, state, reason in
                guard let request = state.request else { return }
                try await Conversation(runner: self, request: request, attempt: attempt).fail(reason, retryable: false)
            }
        ) { attempt, state in
            guard let request = state.request else { return }
            let run = Conversation(runner: self, request: request, attempt: attempt)
            let started = ContinuousClock.now
            let ending = try await withThrowingTaskGroup(of: Ending.self) { group in
                group.addTask {
                    try await run.loop()
                    return .finished
                }
                group.addTask {
                    try await watchUntilEnded(attempt.stream)
                    return .cancelled
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(request.timeoutSeconds))
                    return .timedOut
                }
                defer { group.cancelAll() }
                return try await group.next()!
            }
            switch ending {
            case .finished:
                break
            case .cancelled:
                attempt.logger.info("execution ended elsewhere (cancelled); stopped calling the model")
            case .timedOut:
                attempt.logger.info("execution timed out", metadata: ["timeout": "\(request.timeoutSeconds)", "elapsed": "\(ContinuousClock.now - started)"])
                try await attempt.appendOutcome(.timeOut(AgentExecutionTimedOut(
                    executionID: executionID, agentID: request.agentID, timeoutSeconds: request.timeoutSeconds, timedOutAt: Date()),
                    attempt: attempt.number), step: "timeout")
            }
        }
    }

    /// Returns once the execution is terminal (another process cancelled it).
    func watchUntilEnded(_ stream: StreamID) async throws {
        while true {
            try await Task.sleep(for: configuration.cancellationPoll)
            let (state, _) = try await handler.load(stream.description)
            if state.status.isTerminal { return }
        }
    }
}

/// One attempt's conversation: the messages, the usage so far, and the appends it makes.
struct Conversation: Sendable {
    let runner: AgentExecutionRunner
    let request: AgentExecutionRequested
    let attempt: AttemptRunner<AgentExecutionDecider>.Attempt

    func append(_ command: AgentExecutionDecider.Command, step: String) async throws {
        try await attempt.append(command, step: step)
    }

    func appendIgnoringConflict(_ command: AgentExecutionDecider.Command, step: String) async throws {
        try await attempt.appendOutcome(command, step: step)
    }

    func loop() async throws {
        var messages: [ChatMessage] = []
        if let fork = request.fork {
            // A fork starts where its origin's call was asked, with its own system messages.
            messages = try EventCoding.decode([ChatMessage].self, from: try EventCoding.encode(fork.messages))
        } else {
            if let persona = request.persona { messages.append(ChatMessage(role: .system, content: persona.renderedPrompt)) }
            if !request.instructions.isEmpty { messages.append(ChatMessage(role: .system, content: request.instructions)) }
            messages.append(ChatMessage(role: .user, content: request.input))
        }
        let tools = request.plugins.compactMap(AgentPlugins.tool(named:)).map {
            ToolSpec(name: $0.functionName, description: $0.description, parameters: $0.parameters)
        }
        var usage = TokenUsage()
        var cost = 0.0
        let started = ContinuousClock.now
        for step in 1...runner.configuration.maxSteps {
            let chat = ChatRequest(
                model: request.settings.model, messages: messages, temperature: request.settings.temperature,
                maxTokens: request.settings.maxTokens, tools: tools)
            let callStarted = ContinuousClock.now
            let response: ChatResponse
            do {
                response = try await runner.model.complete(chat)
            } catch let error as LanguageModelError {
                try await fail(error.description, retryable: error.mayRecover)
                return
            }
            let callCost = runner.prices.cost(of: response.usage, model: response.model)
            usage = usage + response.usage
            cost += callCost
            try await append(.recordLLMCall(AgentLLMCallRecorded(
                executionID: request.executionID, agentID: request.agentID, attempt: attempt.number, step: step, model: response.model,
                request: try Self.json(chat), response: try Self.json(response.message), usage: response.usage, cost: callCost,
                durationMs: (ContinuousClock.now - callStarted).milliseconds, recordedAt: Date())), step: "call-\(step)")
            messages.append(response.message)
            guard let calls = response.message.toolCalls, !calls.isEmpty else {
                try await appendIgnoringConflict(.complete(AgentExecutionCompleted(
                    executionID: request.executionID, agentID: request.agentID, output: response.message.content ?? "",
                    model: response.model, tokensUsed: usage, cost: (cost * 1e8).rounded() / 1e8,
                    durationMs: (ContinuousClock.now - started).milliseconds, completedAt: Date()), attempt: attempt.number), step: "complete")
                return
            }
            for (index, call) in calls.enumerated() {
                let (result, isError): (String, Bool)
                if let plugin = AgentPlugins.plugin(forFunction: call.name, among: request.plugins) {
                    switch plugin {
                    case "sandbox.python": (result, isError) = await runSandbox(arguments: call.arguments)
                    case "knowledge.search":
                        (result, isError) =
                            await runner.knowledge?.search(owner: request.ownerID, arguments: call.arguments)
                            ?? ("knowledge search is not available to this worker", true)
                    default: (result, isError) = AgentPlugins.invoke(plugin, arguments: call.arguments, now: Date())
                    }
                } else {
                    (result, isError) = ("the agent has no tool '\(call.name)'", true)
                }
                try await append(.recordToolInvocation(AgentToolInvoked(
                    executionID: request.executionID, agentID: request.agentID, attempt: attempt.number, step: step, callID: call.id,
                    tool: AgentPlugins.plugin(forFunction: call.name, among: request.plugins) ?? call.name, arguments: call.arguments,
                    result: result, isError: isError, invokedAt: Date())), step: "tool-\(step)-\(index)")
                messages.append(ChatMessage(role: .tool, content: result, toolCallID: call.id))
            }
        }
        try await fail("the model was still calling tools after \(runner.configuration.maxSteps) calls; stopped", retryable: false)
    }

    /// The `sandbox.python` tool: the program's ending, stdout and stderr as JSON for the model,
    /// each stream cut to 8 KiB (the whole run is the sandbox's own business; the model and the
    /// event need only what fits a conversation).
    func runSandbox(arguments: String) async -> (String, Bool) {
        guard let sandbox = runner.sandbox else { return ("the sandbox is not available to this worker", true) }
        let parsed: (code: String, timeoutSeconds: Int?)
        switch AgentPlugins.sandboxArguments(arguments) {
        case .success(let value): parsed = value
        case .failure(let error): return (error.message, true)
        }
        let limits = sandbox.limits.with(timeoutSeconds: parsed.timeoutSeconds ?? sandbox.limits.timeoutSeconds)
        do {
            let result = try await sandbox.runner.run(parsed.code, limits: limits)
            let event = result.event(executionID: request.executionID, attempt: attempt.number, timeoutSeconds: limits.timeoutSeconds, now: Date())
            let status: String
            switch event {
            case .completed: status = "completed"
            case .timedOut: status = "timed_out"
            case .limitExceeded(let exceeded): status = "limit_exceeded: \(exceeded.limit)"
            default: status = "failed"
            }
            func cut(_ text: String) -> String { text.utf8.count <= 8192 ? text : String(decoding: text.utf8.prefix(8192), as: UTF8.self) + "\n[cut]" }
            var answer: [String: JSONValue] = ["status": .string(status), "stdout": .string(cut(result.output.stdout)), "stderr": .string(cut(result.output.stderr))]
            if case .exited(let code) = result.ending { answer["exit_code"] = .number(Double(code)) }
            let text = String(decoding: (try? EventCoding.encode(JSONValue.object(answer))) ?? Data(), as: UTF8.self)
            return (text, status != "completed")
        } catch {
            return ("the sandbox could not run the code: \(error)", true)
        }
    }

    func fail(_ message: String, retryable: Bool) async throws {
        try await appendIgnoringConflict(.fail(AgentExecutionFailed(
            executionID: request.executionID, agentID: request.agentID, error: message, attempt: attempt.number, retryable: retryable,
            failedAt: Date())), step: "fail")
    }

    static func json(_ value: some Encodable) throws -> JSONValue {
        try EventCoding.decode(JSONValue.self, from: try EventCoding.encode(value))
    }
}

extension Duration {
    var milliseconds: Int {
        Int(components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000)
    }
}
