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
    let logger: Logger

    public init(
        store: any EventStore, model: any LanguageModel, prices: ModelPrices = .defaults, configuration: Configuration = .init(),
        sandbox: (runner: any SandboxRunner, limits: SandboxLimits)? = nil, logger: Logger
    ) {
        handler = CommandHandler(store: store)
        self.model = model
        self.prices = prices
        self.configuration = configuration
        self.sandbox = sandbox
        self.logger = logger
    }

    /// The worker's handler: the message is the relayed `AgentExecutionRequested`.
    public func handle(_ item: WorkItem) async throws {
        let (message, executionID) = try item.requestedExecution(code: "execution.message_malformed")
        try await run(executionID, cause: message)
    }

    enum Ending: Sendable { case finished, cancelled, timedOut }

    func run(_ executionID: UUID, cause: IntegrationMessage) async throws {
        let stream = AgentExecutionDecider.streamID(executionID)
        let (state, _) = try await handler.load(stream.description)
        guard let request = state.request, !state.status.isTerminal else { return }
        var logger = logger
        logger[metadataKey: "agent.execution.id"] = "\(executionID)"
        let attempt = state.attempt + 1
        let run = Attempt(runner: self, request: request, attempt: attempt, stream: stream, cause: cause)
        do {
            try await run.append(.start(StartAgentExecution(executionID: executionID, attempt: attempt, now: Date())), step: "start")
        } catch let error as DomainError where error.code == "execution.attempts_exhausted" {
            logger.warning("execution interrupted too often; failing it", metadata: ["attempts": "\(state.maxAttempts)"])
            try await run.appendIgnoringConflict(.fail(AgentExecutionFailed(
                executionID: executionID, agentID: request.agentID,
                error: "the run was interrupted \(state.maxAttempts) times before it could finish", attempt: state.attempt,
                retryable: true, failedAt: Date())), step: "exhausted")
            return
        } catch let error as DomainError {
            logger.info("execution not started", metadata: ["reason": "\(error)"])
            return
        }
        let started = ContinuousClock.now
        let runLogger = logger
        let ending = try await withThrowingTaskGroup(of: Ending.self) { group in
            group.addTask {
                do {
                    try await run.loop()
                } catch EventStoreError.refused(let reason) {
                    // A model answer or tool result the store refuses would be refused again on
                    // every redelivery: the run ends, saying why.
                    runLogger.error("the run's outcome could not be stored; failing it", metadata: ["reason": "\(reason)"])
                    try await run.fail("the run's outcome could not be stored: \(reason)", retryable: false)
                }
                return .finished
            }
            group.addTask {
                try await watchUntilEnded(stream)
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
            logger.info("execution ended elsewhere (cancelled); stopped calling the model")
        case .timedOut:
            logger.info("execution timed out", metadata: ["timeout": "\(request.timeoutSeconds)", "elapsed": "\(ContinuousClock.now - started)"])
            try await run.appendIgnoringConflict(.timeOut(AgentExecutionTimedOut(
                executionID: executionID, agentID: request.agentID, timeoutSeconds: request.timeoutSeconds, timedOutAt: Date()),
                attempt: attempt), step: "timeout")
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

/// One attempt at a run: the conversation, the usage so far, and the appends it makes.
struct Attempt: Sendable {
    let runner: AgentExecutionRunner
    let request: AgentExecutionRequested
    let attempt: Int
    let stream: StreamID
    let cause: IntegrationMessage

    /// Each append's command id names the execution, attempt and step, so a repeated append
    /// (a retry after a lost answer) is recognised as the same command.
    func append(_ command: AgentExecutionDecider.Command, step: String) async throws {
        let context = CommandContext(
            commandID: "agent-run/\(request.executionID.uuidString.lowercased())/\(attempt)/\(step)",
            userID: AgentExecutionRunner.workerUserID, tenantID: cause.tenantID, correlationID: cause.correlationID,
            causationID: cause.eventID.uuidString.lowercased())
        _ = try await runner.handler.handle(command, on: stream, context: context)
    }

    /// For outcomes: if the run already ended (cancelled meanwhile), there is nothing to add.
    func appendIgnoringConflict(_ command: AgentExecutionDecider.Command, step: String) async throws {
        do {
            try await append(command, step: step)
        } catch let error as DomainError where error.kind == .conflict {
            runner.logger.info("outcome not recorded: the execution already ended", metadata: ["reason": "\(error)"])
        }
    }

    func loop() async throws {
        var messages: [ChatMessage] = []
        if !request.instructions.isEmpty { messages.append(ChatMessage(role: .system, content: request.instructions)) }
        messages.append(ChatMessage(role: .user, content: request.input))
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
                executionID: request.executionID, agentID: request.agentID, attempt: attempt, step: step, model: response.model,
                request: try Self.json(chat), response: try Self.json(response.message), usage: response.usage, cost: callCost,
                durationMs: (ContinuousClock.now - callStarted).milliseconds, recordedAt: Date())), step: "call-\(step)")
            messages.append(response.message)
            guard let calls = response.message.toolCalls, !calls.isEmpty else {
                try await appendIgnoringConflict(.complete(AgentExecutionCompleted(
                    executionID: request.executionID, agentID: request.agentID, output: response.message.content ?? "",
                    model: response.model, tokensUsed: usage, cost: (cost * 1e8).rounded() / 1e8,
                    durationMs: (ContinuousClock.now - started).milliseconds, completedAt: Date()), attempt: attempt), step: "complete")
                return
            }
            for (index, call) in calls.enumerated() {
                let (result, isError): (String, Bool)
                if let plugin = AgentPlugins.plugin(forFunction: call.name, among: request.plugins) {
                    (result, isError) =
                        plugin == "sandbox.python"
                        ? await runSandbox(arguments: call.arguments) : AgentPlugins.invoke(plugin, arguments: call.arguments, now: Date())
                } else {
                    (result, isError) = ("the agent has no tool '\(call.name)'", true)
                }
                try await append(.recordToolInvocation(AgentToolInvoked(
                    executionID: request.executionID, agentID: request.agentID, attempt: attempt, step: step, callID: call.id,
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
            let event = result.event(executionID: request.executionID, attempt: attempt, timeoutSeconds: limits.timeoutSeconds, now: Date())
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
            executionID: request.executionID, agentID: request.agentID, error: message, attempt: attempt, retryable: retryable,
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
