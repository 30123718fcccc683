import Commands
import Events
import Foundation
import Logging
import Workers
import Synchronization
import Testing

/// The agent worker's handler against the in-memory store and scripted models.
@Suite struct AgentExecutionRunnerTests {
    static let logger = Logger(label: "test")

    /// A model that answers from a script of closures, counting calls.
    final class Model: LanguageModel {
        let calls = Mutex(0)
        let answer: @Sendable (Int, ChatRequest) async throws -> ChatResponse

        init(_ answer: @escaping @Sendable (Int, ChatRequest) async throws -> ChatResponse) { self.answer = answer }

        func complete(_ request: ChatRequest) async throws -> ChatResponse {
            let n = calls.withLock { $0 += 1; return $0 }
            return try await answer(n, request)
        }

        var count: Int { calls.withLock { $0 } }
    }

    struct Fixture {
        let store = InMemoryEventStore()
        let executionID = UUID()
        let agentID = UUID()

        /// Appends a request for a run of an agent with the given plugins, as the API does.
        func request(plugins: [String] = [], input: String = "What is (2+3)*7?", timeout: Int = 300, maxAttempts: Int = 3) async throws -> RecordedEvent {
            let agent = AgentDecider.fold([.created(AgentCreated(
                agentID: agentID, ownerID: "user-1", name: "A", instructions: "Be brief.",
                settings: AgentModelSettings(model: "gpt-4o-mini", temperature: 0, maxTokens: 100), plugins: plugins, createdAt: Date()))])
            let handler = CommandHandler<AgentExecutionDecider>(store: store)
            _ = try await handler.handle(
                .request(RequestAgentExecution(
                    executionID: executionID, agentID: agentID, agent: agent, input: input, timeoutSeconds: timeout, maxAttempts: maxAttempts,
                    now: Date())),
                on: AgentExecutionDecider.streamID(executionID), context: CommandContext(userID: "user-1", tenantID: "t"))
            return try await store.readStream(stream, from: 1, direction: .forward, limit: 1)[0]
        }

        var stream: String { AgentExecutionDecider.streamID(executionID).description }

        func item(for requested: RecordedEvent) throws -> WorkItem {
            let body = try IntegrationMessage.body(
                eventID: requested.eventID, eventType: requested.eventType, contractVersion: 1, streamID: requested.streamID,
                streamVersion: requested.streamVersion, occurredAt: requested.recordedAt, correlationID: "c", causationID: "c", tenantID: "t",
                rawData: requested.data)
            return WorkItem(messageID: requested.eventID.uuidString, type: requested.eventType, body: body, attempt: 1, receipt: 1)
        }

        func types() async throws -> [String] {
            try await store.readStream(stream, from: 1, direction: .forward, limit: 1000).map(\.eventType)
        }

        func events() async throws -> [AgentExecutionEvent] {
            try await store.readStream(stream, from: 1, direction: .forward, limit: 1000).map {
                try AgentExecutionEvent.registry.decode($0, as: AgentExecutionEvent.self)
            }
        }

        func runner(_ model: any LanguageModel, maxSteps: Int = 8) -> AgentExecutionRunner {
            AgentExecutionRunner(
                store: store, model: model, configuration: .init(maxSteps: maxSteps, cancellationPoll: .milliseconds(20)), logger: logger)
        }
    }

    static func reply(_ text: String, usage: TokenUsage = TokenUsage(promptTokens: 10, completionTokens: 5)) -> ChatResponse {
        ChatResponse(model: "gpt-4o-mini", message: ChatMessage(role: .assistant, content: text), finishReason: "stop", usage: usage)
    }

    @Test func theOfflineModelRunsTheToolLoopAndCompletes() async throws {
        let fixture = Fixture()
        let requested = try await fixture.request(plugins: ["math.evaluate"])
        try await fixture.runner(OfflineLanguageModel()).handle(try fixture.item(for: requested))
        #expect(try await fixture.types() == [
            "AgentExecutionRequested", "AgentExecutionStarted", "AgentLLMCallRecorded", "AgentToolInvoked", "AgentLLMCallRecorded",
            "AgentExecutionCompleted",
        ])
        let events = try await fixture.events()
        guard case .toolInvoked(let tool) = events[3], case .completed(let completed) = events[5] else {
            Issue.record("unexpected events")
            return
        }
        #expect(tool.tool == "math.evaluate" && tool.result == "35" && !tool.isError)
        #expect(completed.output.contains("35"))
        #expect(completed.model == "offline")
        #expect(completed.tokensUsed.totalTokens > 0)
    }

    @Test func recordsCostFromThePriceTable() async throws {
        let fixture = Fixture()
        let requested = try await fixture.request(input: "hello")
        let model = Model { _, _ in Self.reply("hi", usage: TokenUsage(promptTokens: 1_000_000, completionTokens: 1_000_000)) }
        try await fixture.runner(model).handle(try fixture.item(for: requested))
        guard case .completed(let completed) = try await fixture.events().last else { Issue.record("not completed"); return }
        // gpt-4o-mini: $0.15 in and $0.60 out per million tokens.
        #expect(abs(completed.cost - 0.75) < 1e-9)
    }

    @Test func aModelThatKeepsFailingEndsTheRunFailedWithAClearError() async throws {
        let fixture = Fixture()
        let requested = try await fixture.request(input: "hello")
        let model = Model { _, _ in throw LanguageModelError.server(status: 500, message: "upstream down") }
        try await fixture.runner(model).handle(try fixture.item(for: requested))
        guard case .failed(let failed) = try await fixture.events().last else { Issue.record("not failed"); return }
        #expect(failed.error == "the model answered 500: upstream down")
        #expect(failed.retryable)
    }

    @Test func aRedeliveredMessageOfAFinishedRunAddsNothing() async throws {
        let fixture = Fixture()
        let requested = try await fixture.request(input: "hello")
        let model = Model { _, _ in Self.reply("hi") }
        try await fixture.runner(model).handle(try fixture.item(for: requested))
        let before = try await fixture.types()
        try await fixture.runner(model).handle(try fixture.item(for: requested))
        #expect(try await fixture.types() == before)
        #expect(model.count == 1)
    }

    @Test func aRunWhoseWorkerDiedIsRestartedAsTheNextAttemptAndEndsOnce() async throws {
        let fixture = Fixture()
        let requested = try await fixture.request(input: "hello")
        // A worker started attempt 1 and died.
        _ = try await CommandHandler<AgentExecutionDecider>(store: fixture.store).handle(
            .start(StartAgentExecution(executionID: fixture.executionID, attempt: 1, now: Date())),
            on: AgentExecutionDecider.streamID(fixture.executionID), context: CommandContext())
        try await fixture.runner(Model { _, _ in Self.reply("hi") }).handle(try fixture.item(for: requested))
        let events = try await fixture.events()
        #expect(events.filter { if case .started = $0 { true } else { false } }.count == 2)
        #expect(events.filter(Self.isTerminal).count == 1)
    }

    @Test func aRunInterruptedTooOftenFails() async throws {
        let fixture = Fixture()
        let requested = try await fixture.request(input: "hello", maxAttempts: 1)
        _ = try await CommandHandler<AgentExecutionDecider>(store: fixture.store).handle(
            .start(StartAgentExecution(executionID: fixture.executionID, attempt: 1, now: Date())),
            on: AgentExecutionDecider.streamID(fixture.executionID), context: CommandContext())
        let model = Model { _, _ in Self.reply("hi") }
        try await fixture.runner(model).handle(try fixture.item(for: requested))
        guard case .failed(let failed) = try await fixture.events().last else { Issue.record("not failed"); return }
        #expect(failed.error.contains("interrupted"))
        #expect(model.count == 0)
    }

    @Test func cancellingARunningExecutionStopsTheModelCalls() async throws {
        let fixture = Fixture()
        let requested = try await fixture.request(input: "hello")
        let model = Model { _, _ in
            try await Task.sleep(for: .seconds(30))
            return Self.reply("too late")
        }
        let runner = fixture.runner(model)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await runner.handle(try fixture.item(for: requested)) }
            while model.count == 0 { try await Task.sleep(for: .milliseconds(10)) }
            _ = try await CommandHandler<AgentExecutionDecider>(store: fixture.store).handle(
                .cancel(CancelAgentExecution(executionID: fixture.executionID, now: Date())),
                on: AgentExecutionDecider.streamID(fixture.executionID), context: CommandContext(userID: "user-1"))
            try await group.waitForAll()
        }
        let events = try await fixture.events()
        #expect(events.filter(Self.isTerminal).count == 1)
        guard case .cancelled = events.last else { Issue.record("last event is not the cancel"); return }
        #expect(model.count == 1)
    }

    @Test func aRunPastItsTimeLimitTimesOut() async throws {
        let fixture = Fixture()
        let requested = try await fixture.request(input: "hello", timeout: 1)
        let model = Model { _, _ in
            try await Task.sleep(for: .seconds(30))
            return Self.reply("too late")
        }
        try await fixture.runner(model).handle(try fixture.item(for: requested))
        guard case .timedOut(let timedOut) = try await fixture.events().last else { Issue.record("not timed out"); return }
        #expect(timedOut.timeoutSeconds == 1)
    }

    @Test func aModelThatNeverStopsCallingToolsIsStopped() async throws {
        let fixture = Fixture()
        let requested = try await fixture.request(plugins: ["time.now"], input: "loop")
        let model = Model { n, _ in
            ChatResponse(
                model: "gpt-4o-mini",
                message: ChatMessage(role: .assistant, content: nil, toolCalls: [ToolCall(id: "c\(n)", name: "time_now", arguments: "{}")]),
                finishReason: "tool_calls", usage: TokenUsage())
        }
        try await fixture.runner(model, maxSteps: 3).handle(try fixture.item(for: requested))
        guard case .failed(let failed) = try await fixture.events().last else { Issue.record("not failed"); return }
        #expect(failed.error.contains("after 3 calls"))
        #expect(!failed.retryable)
        #expect(model.count == 3)
    }

    @Test func aToolTheAgentWasNotGivenIsAnErrorForTheModel() async throws {
        let fixture = Fixture()
        let requested = try await fixture.request(plugins: [], input: "hi")
        let model = Model { n, _ in
            n == 1
                ? ChatResponse(
                    model: "m", message: ChatMessage(role: .assistant, content: nil, toolCalls: [ToolCall(id: "x", name: "rm_rf", arguments: "{}")]),
                    finishReason: "tool_calls", usage: TokenUsage())
                : Self.reply("sorry")
        }
        try await fixture.runner(model).handle(try fixture.item(for: requested))
        let tool = try await fixture.events().compactMap { if case .toolInvoked(let t) = $0 { t } else { nil } }.first
        #expect(tool?.isError == true)
        #expect(tool?.result == "the agent has no tool 'rm_rf'")
    }

    static func isTerminal(_ event: AgentExecutionEvent) -> Bool {
        switch event {
        case .completed, .failed, .cancelled, .timedOut: true
        default: false
        }
    }
}
