import Adapters
import Commands
import Events
import Foundation
import Testing

/// The real OpenAI-compatible adapter against the local stub server.
@Suite struct OpenAIAdapterTests {
    static func request(_ model: String, tools: Bool = false) -> ChatRequest {
        ChatRequest(
            model: model, messages: [ChatMessage(role: .system, content: "Be brief."), ChatMessage(role: .user, content: "hello there")],
            temperature: 0.2, maxTokens: 64,
            tools: tools ? [ToolSpec(name: "math_evaluate", description: "math", parameters: .object(["type": .string("object")]))] : [])
    }

    static func model(_ url: String, key: String? = "sk-test", flavor: OpenAICompatibleModel.Settings.Flavor = .openAI, timeout: Duration = .seconds(30)) -> OpenAICompatibleModel {
        OpenAICompatibleModel(settings: .init(baseURL: url, apiKey: key, flavor: flavor, requestTimeout: timeout), logger: TestServers.logger)
    }

    static let fast = ResilientLanguageModel.Policy(tries: 3, backoff: [.milliseconds(10)], timeout: .seconds(10))

    @Test func completesWithUsageAndSendsTheKeyAsABearerToken() async throws {
        let stub = StubModelServer()
        try await stub.run { url in
            let response = try await Self.model(url).complete(Self.request("stub-echo"))
            #expect(response.message.content == "stub: hello there")
            #expect(response.usage == TokenUsage(promptTokens: 11, completionTokens: 7))
            #expect(response.model == "stub-echo")
            let seen = try #require(stub.requests().first)
            #expect(seen.authorization == "Bearer sk-test")
            #expect(seen.body["max_tokens"] as? Int == 64)
            #expect((seen.body["messages"] as? [[String: Any]])?.count == 2)
        }
    }

    @Test func decodesToolCalls() async throws {
        let stub = StubModelServer()
        try await stub.run { url in
            let response = try await Self.model(url).complete(Self.request("stub-tool", tools: true))
            #expect(response.message.toolCalls == [ToolCall(id: "call_1", name: "math_evaluate", arguments: "{\"expression\":\"6*7\"}")])
            #expect(response.finishReason == "tool_calls")
            let tools = try #require(stub.requests().first?.body["tools"] as? [[String: Any]])
            #expect((tools.first?["function"] as? [String: Any])?["name"] as? String == "math_evaluate")
        }
    }

    @Test func retriesA429AndSucceeds() async throws {
        let stub = StubModelServer()
        try await stub.run { url in
            let model = ResilientLanguageModel(Self.model(url), policy: Self.fast)
            let answer = try await model.complete(Self.request("stub-429-once"))
            #expect(answer.message.content == "stub: hello there")
            #expect(stub.requests(model: "stub-429-once").count == 2)
        }
    }

    @Test func aServerErrorThreeTimesFailsWithTheServersMessage() async throws {
        let stub = StubModelServer()
        try await stub.run { url in
            let model = ResilientLanguageModel(Self.model(url), policy: Self.fast)
            await #expect(throws: LanguageModelError.server(status: 500, message: "stub failure")) {
                try await model.complete(Self.request("stub-500"))
            }
            #expect(stub.requests(model: "stub-500").count == 3)
        }
    }

    @Test func aSlowAnswerTimesOut() async throws {
        // The answer would take 10 s; the 300 ms timeout ends the call well before (5 s leaves
        // room for a loaded machine and still tells the two apart).
        let stub = StubModelServer(slowSeconds: 10)
        try await stub.run { url in
            let model = ResilientLanguageModel(Self.model(url), policy: .init(tries: 1, timeout: .milliseconds(300)))
            let clock = ContinuousClock()
            let started = clock.now
            await #expect(throws: LanguageModelError.timedOut(seconds: 0.3)) { try await model.complete(Self.request("stub-slow")) }
            #expect(clock.now - started < .seconds(5))
        }
    }

    @Test func streamsTextAsItArrivesThenTheWholeAnswer() async throws {
        let stub = StubModelServer()
        try await stub.run { url in
            var deltas: [String] = []
            var final: ChatResponse?
            for try await event in Self.model(url).stream(Self.request("stub-echo")) {
                switch event {
                case .delta(let text): deltas.append(text)
                case .finished(let response): final = response
                }
            }
            #expect(deltas.count == 3)
            #expect(deltas.joined() == "stub: hello there")
            #expect(final?.message.content == "stub: hello there")
            #expect(final?.usage == TokenUsage(promptTokens: 11, completionTokens: 7))
            #expect(stub.requests().first?.body["stream"] as? Bool == true)
        }
    }

    @Test func streamsAToolCallSplitOverChunks() async throws {
        let stub = StubModelServer()
        try await stub.run { url in
            var final: ChatResponse?
            for try await case .finished(let response) in Self.model(url).stream(Self.request("stub-tool", tools: true)) { final = response }
            #expect(final?.message.toolCalls == [ToolCall(id: "call_1", name: "math_evaluate", arguments: "{\"expression\":\"6*7\"}")])
        }
    }

    @Test func speaksAzureWithDeploymentApiVersionAndApiKey() async throws {
        let stub = StubModelServer()
        try await stub.run { url in
            let base = String(url.dropLast(3))  // the endpoint, without /v1
            let model = Self.model(base, key: "azure-key", flavor: .azure(deployment: "my-gpt", apiVersion: "2024-10-21"))
            let answer = try await model.complete(Self.request("stub-echo"))
            #expect(answer.message.content == "stub: hello there")
            let seen = try #require(stub.requests().first)
            #expect(seen.path == "/openai/deployments/my-gpt/chat/completions")
            #expect(seen.query == "api-version=2024-10-21")
            #expect(seen.apiKey == "azure-key")
            #expect(seen.authorization == nil)
        }
    }

    @Test func anUnreachableServerIsRetryableAndSaysSo() async throws {
        let port = try CLIProcess.freePort()
        await #expect {
            try await Self.model("http://127.0.0.1:\(port)/v1").complete(Self.request("stub-echo"))
        } throws: { error in
            guard let error = error as? LanguageModelError, case .unreachable = error else { return false }
            return error.isRetryable
        }
    }

    @Test func theBreakerOpensOnRepeatedFailuresAndClosesWhenTheModelRecovers() async throws {
        let stub = StubModelServer()
        try await stub.run { url in
            let policy = ResilientLanguageModel.Policy(
                tries: 1, timeout: .seconds(10), breaker: .init(failureRateThreshold: 0.5, minimumCalls: 3, windowSeconds: 60, openSeconds: 0.5))
            let model = ResilientLanguageModel(Self.model(url), policy: policy)
            for _ in 0..<3 { _ = try? await model.complete(Self.request("stub-500")) }
            await #expect {
                try await model.complete(Self.request("stub-echo"))
            } throws: { error in
                if case .circuitOpen = error as? LanguageModelError { return true }
                return false
            }
            #expect(stub.requests(model: "stub-echo").isEmpty, "an open circuit must not call the model")
            try await Task.sleep(for: .milliseconds(600))
            let answer = try await model.complete(Self.request("stub-echo"))
            #expect(answer.message.content == "stub: hello there")
            #expect(model.breakerState == .closed)
        }
    }
}
