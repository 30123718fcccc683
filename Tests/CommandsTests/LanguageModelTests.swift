import Commands
import Events
import Foundation
import Synchronization
import Testing

@Suite struct OfflineLanguageModelTests {
    static func request(_ input: String, tools: [String] = []) -> ChatRequest {
        ChatRequest(
            model: "gpt-4", messages: [ChatMessage(role: .user, content: input)], temperature: 0, maxTokens: 100,
            tools: tools.compactMap(AgentPlugins.tool(named:)).map { ToolSpec(name: $0.functionName, description: $0.description, parameters: $0.parameters) })
    }

    @Test func namesItselfOfflineAndIsDeterministic() async throws {
        let model = OfflineLanguageModel()
        let first = try await model.complete(Self.request("Summarise this please"))
        let second = try await model.complete(Self.request("Summarise this please"))
        #expect(first == second)
        #expect(first.model == "offline")
        #expect(first.message.content?.hasPrefix("[offline model]") == true)
        #expect(first.usage.promptTokens > 0 && first.usage.completionTokens > 0)
    }

    @Test func asksForTheMathToolWhenOfferedAndGivenArithmetic() async throws {
        let response = try await OfflineLanguageModel().complete(Self.request("What is (2+3)*7?", tools: ["math.evaluate"]))
        let call = try #require(response.message.toolCalls?.first)
        #expect(call.name == "math_evaluate")
        #expect(call.arguments.contains("(2+3)*7"))
    }

    @Test func answersWithoutToolsWhenNoneAreOffered() async throws {
        let response = try await OfflineLanguageModel().complete(Self.request("What is (2+3)*7?"))
        #expect(response.message.toolCalls == nil)
    }
}

/// A model that fails with the given errors, then answers.
final class ScriptedModel: LanguageModel {
    let script: Mutex<[LanguageModelError]>
    let calls = Mutex(0)

    init(_ failures: [LanguageModelError]) { script = Mutex(failures) }

    func complete(_ request: ChatRequest) async throws -> ChatResponse {
        calls.withLock { $0 += 1 }
        if let failure = script.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { throw failure }
        return ChatResponse(model: "scripted", message: ChatMessage(role: .assistant, content: "ok"), finishReason: "stop", usage: TokenUsage())
    }
}

/// A model that never answers.
struct HangingModel: LanguageModel {
    func complete(_ request: ChatRequest) async throws -> ChatResponse {
        try await Task.sleep(for: .seconds(3600))
        throw CancellationError()
    }
}

@Suite struct ResilientLanguageModelTests {
    static let request = OfflineLanguageModelTests.request("hi")
    static let fast = ResilientLanguageModel.Policy(tries: 3, backoff: [.milliseconds(1)], timeout: .seconds(5))

    @Test func retriesServerErrorsAndRateLimitsThenSucceeds() async throws {
        let base = ScriptedModel([.server(status: 500, message: ""), .rateLimited(retryAfter: nil)])
        let model = ResilientLanguageModel(base, policy: Self.fast)
        #expect(try await model.complete(Self.request).message.content == "ok")
        #expect(base.calls.withLock { $0 } == 3)
    }

    @Test func givesUpAfterTheConfiguredTries() async throws {
        let base = ScriptedModel(Array(repeating: .server(status: 500, message: "down"), count: 5))
        let model = ResilientLanguageModel(base, policy: Self.fast)
        await #expect(throws: LanguageModelError.server(status: 500, message: "down")) { try await model.complete(Self.request) }
        #expect(base.calls.withLock { $0 } == 3)
    }

    @Test func doesNotRetryARefusedRequest() async throws {
        let base = ScriptedModel([.rejected(status: 400, message: "bad")])
        let model = ResilientLanguageModel(base, policy: Self.fast)
        await #expect(throws: LanguageModelError.rejected(status: 400, message: "bad")) { try await model.complete(Self.request) }
        #expect(base.calls.withLock { $0 } == 1)
    }

    @Test func timesOutAHangingCall() async throws {
        let model = ResilientLanguageModel(HangingModel(), policy: .init(tries: 1, timeout: .milliseconds(50)))
        await #expect(throws: LanguageModelError.timedOut(seconds: 0.05)) { try await model.complete(Self.request) }
    }

    @Test func theBreakerOpensUnderRepeatedFailuresAndFailsFast() async throws {
        let base = ScriptedModel(Array(repeating: .server(status: 503, message: ""), count: 4))
        let policy = ResilientLanguageModel.Policy(
            tries: 1, backoff: [.milliseconds(1)], timeout: .seconds(5),
            breaker: .init(failureRateThreshold: 0.5, minimumCalls: 2, windowSeconds: 60, openSeconds: 0.2))
        let model = ResilientLanguageModel(base, policy: policy)
        for _ in 0..<2 { _ = try? await model.complete(Self.request) }
        #expect(model.breakerState != .closed)
        do {
            _ = try await model.complete(Self.request)
            Issue.record("expected the open circuit to refuse")
        } catch let error as LanguageModelError {
            guard case .circuitOpen = error else { Issue.record("got \(error)"); return }
        }
        #expect(base.calls.withLock { $0 } == 2)
        // After the open period one trial goes through; the model still fails, so it reopens.
        try await Task.sleep(for: .milliseconds(250))
        _ = try? await model.complete(Self.request)
        #expect(base.calls.withLock { $0 } == 3)
        // Once the model recovers, a trial closes it.
        try await Task.sleep(for: .milliseconds(250))
        _ = try? await model.complete(Self.request)  // 4th scripted failure
        try await Task.sleep(for: .milliseconds(250))
        #expect(try await model.complete(Self.request).message.content == "ok")
        #expect(model.breakerState == .closed)
    }
}
