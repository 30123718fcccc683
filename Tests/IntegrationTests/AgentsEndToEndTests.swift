import Adapters
import Commands
import Events
import Foundation
import Testing

/// The Agents module through `chronicle serve` as a user runs it: HTTP in, relay and workers
/// over RabbitMQ, a model (offline or the stub), read models out.
@Suite(.serialized) struct AgentsEndToEndTests {
    /// Starts `serve` for the database with the given roles and environment; stops it after.
    static func withServer<T>(
        _ database: ChronicleDatabase, roles: String = "api,projectors,relay,workers", env: [String: String?] = [:],
        _ body: (HTTPTestClient, Process) async throws -> T
    ) async throws -> T {
        let port = try CLIProcess.freePort()
        var overrides = env
        overrides["CHRONICLE_LLM_BASE_URL"] = env["CHRONICLE_LLM_BASE_URL"] ?? .some(nil)
        let process = try CLIProcess.start(
            ["serve", "--roles", roles, "--port", "\(port)", "--database-url", CLITests.url(database)],
            environment: CLIProcess.environment(overrides))
        return try await CLIProcess.stopping(process) {
            var client = HTTPTestClient(base: "http://127.0.0.1:\(port)")
            if roles.contains("api") {
                try await client.waitUntilReady()
                client = try await client.signIn(database)
            }
            return try await body(client, process)
        }
    }

    static func createAgent(_ client: HTTPTestClient, model: String? = nil, plugins: [String] = []) async throws -> String {
        var body: [String: Any] = ["name": "Calculator", "instructions": "Answer briefly.", "plugins": plugins]
        if let model { body["model"] = model }
        let created = try await client.send("POST", "/api/v1/agents", json: body)
        #expect(created.status == 201, "create answered \(created.status): \(created.text)")
        return try #require(created.json["id"] as? String)
    }

    static func execute(_ client: HTTPTestClient, agent: String, input: String) async throws -> String {
        let accepted = try await client.send("POST", "/api/v1/agents/\(agent)/execute", json: ["input": input])
        #expect(accepted.status == 202, "execute answered \(accepted.status): \(accepted.text)")
        #expect(accepted.headers["location"] == "/api/v1/agents/\(agent)/executions/\(accepted.json["execution_id"] as? String ?? "")")
        return try #require(accepted.json["execution_id"] as? String)
    }

    static func terminal(_ json: [String: Any]) -> Bool {
        ["completed", "failed", "cancelled"].contains(json["status"] as? String ?? "")
    }

    static func events(_ database: ChronicleDatabase, execution: String) async throws -> [AgentExecutionEvent] {
        try await database.eventStore.readStream("agentexecution-\(execution)", from: 1, direction: .forward, limit: 1000).map {
            try EventRegistry.chronicle.decode($0, as: AgentExecutionEvent.self)
        }
    }

    static func isTerminal(_ event: AgentExecutionEvent) -> Bool {
        switch event {
        case .completed, .failed, .cancelled, .timedOut: true
        default: false
        }
    }

    @Test func withNoModelConfiguredARunCompletesWithTheOfflineModelsAnswer() async throws {
        try await TestServers.withDatabase { database in
            try await Self.withServer(database) { client, _ in
                let agent = try await Self.createAgent(client)
                let execution = try await Self.execute(client, agent: agent, input: "Tell me about event sourcing")
                let path = "/api/v1/agents/\(agent)/executions/\(execution)"
                let done = try await client.poll(path, until: Self.terminal)
                #expect(done.json["status"] as? String == "completed")
                #expect((done.json["output"] as? String)?.hasPrefix("[offline model]") == true)
                #expect(done.json["model"] as? String == "offline")
                #expect((done.json["tokens_used"] as? Int ?? 0) > 0)
                #expect(done.json["duration_ms"] is Int)
                #expect(done.json.keys.contains("error"))

                // The stream of a finished run replays its last state and ends.
                let stream = try await client.send("GET", path + "/stream")
                #expect(stream.headers["content-type"] == "text/event-stream")
                #expect(stream.text.contains("\"status\":\"completed\""))

                let history = try await client.poll("/api/v1/agents/\(agent)/executions?status=completed") { ($0["total_count"] as? Int) == 1 }
                #expect((history.json["items"] as? [[String: Any]])?.first?["execution_id"] as? String == execution)
                let usage = try await client.poll("/api/v1/agents/\(agent)/usage") {
                    (($0["days"] as? [[String: Any]])?.first?["completed"] as? Int) == 1
                }
                #expect(((usage.json["days"] as? [[String: Any]])?.first?["tokens_used"] as? Int ?? 0) > 0)
            }
        }
    }

    @Test func aToolCallRoundTripCompletesAndIsInTheEventStream() async throws {
        let stub = StubModelServer()
        try await stub.run { url in
            try await TestServers.withDatabase { database in
                try await Self.withServer(database, env: ["CHRONICLE_LLM_BASE_URL": url]) { client, _ in
                    let agent = try await Self.createAgent(client, model: "stub-tool", plugins: ["math.evaluate"])
                    let execution = try await Self.execute(client, agent: agent, input: "What is six times seven?")
                    let done = try await client.poll("/api/v1/agents/\(agent)/executions/\(execution)", until: Self.terminal)
                    #expect(done.json["status"] as? String == "completed")
                    #expect(done.json["output"] as? String == "The answer is 42.")
                    #expect(done.json["tokens_used"] as? Int == 36)
                    let events = try await Self.events(database, execution: execution)
                    let tools = events.compactMap { if case .toolInvoked(let tool) = $0 { tool } else { nil } }
                    #expect(tools.count == 1)
                    #expect(tools.first?.tool == "math.evaluate" && tools.first?.result == "42")
                    #expect(events.filter { if case .llmCallRecorded = $0 { true } else { false } }.count == 2)
                }
            }
        }
    }

    @Test func aModelAnswering500ThreeTimesEndsTheRunFailedWithAClearError() async throws {
        let stub = StubModelServer()
        try await stub.run { url in
            try await TestServers.withDatabase { database in
                try await Self.withServer(database, env: ["CHRONICLE_LLM_BASE_URL": url, "CHRONICLE_LLM_BACKOFF_MS": "50"]) { client, _ in
                    let agent = try await Self.createAgent(client, model: "stub-500")
                    let execution = try await Self.execute(client, agent: agent, input: "hello")
                    let done = try await client.poll("/api/v1/agents/\(agent)/executions/\(execution)", until: Self.terminal)
                    #expect(done.json["status"] as? String == "failed")
                    #expect(done.json["error"] as? String == "the model answered 500: stub failure")
                    #expect(stub.requests(model: "stub-500").count == 3)
                }
            }
        }
    }

    @Test func cancellingARunningExecutionEndsItCancelledAndStopsTheModelCalls() async throws {
        let stub = StubModelServer(slowSeconds: 4)
        try await stub.run { url in
            try await TestServers.withDatabase { database in
                try await Self.withServer(database, env: ["CHRONICLE_LLM_BASE_URL": url]) { client, _ in
                    let agent = try await Self.createAgent(client, model: "stub-slow")
                    let execution = try await Self.execute(client, agent: agent, input: "take your time")
                    let path = "/api/v1/agents/\(agent)/executions/\(execution)"
                    let deadline = ContinuousClock.now.advanced(by: .seconds(20))
                    while stub.requests(model: "stub-slow").isEmpty, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
                    #expect(stub.requests(model: "stub-slow").count == 1, "the run never called the model")
                    let cancelled = try await client.send("POST", path + "/cancel")
                    #expect(cancelled.status == 202)
                    #expect(cancelled.json["status"] as? String == "cancelled")
                    let done = try await client.poll(path, until: Self.terminal)
                    #expect(done.json["status"] as? String == "cancelled")
                    // Longer than the slow answer: had the worker gone on, it would have called again or completed.
                    try await Task.sleep(for: .seconds(5))
                    #expect(stub.requests(model: "stub-slow").count == 1)
                    let events = try await Self.events(database, execution: execution)
                    #expect(events.filter(Self.isTerminal).count == 1)
                    #expect(!events.contains { if case .llmCallRecorded = $0 { true } else { false } })
                    let again = try await client.send("POST", path + "/cancel")
                    #expect(again.status == 409)
                }
            }
        }
    }

    @Test func aWorkerKilledMidRunLeavesTheRunWithExactlyOneTerminalEvent() async throws {
        let stub = StubModelServer(slowSeconds: 3)
        try await stub.run { url in
            try await TestServers.withDatabase { database in
                let env: [String: String?] = ["CHRONICLE_LLM_BASE_URL": url]
                try await Self.withServer(database, roles: "api,projectors,relay", env: env) { client, _ in
                    let agent = try await Self.createAgent(client, model: "stub-slow")
                    let worker = try CLIProcess.start(
                        ["serve", "--roles", "workers", "--database-url", CLITests.url(database)], environment: CLIProcess.environment(env))
                    let execution = try await CLIProcess.stopping(worker) {
                        let execution = try await Self.execute(client, agent: agent, input: "long task")
                        let deadline = ContinuousClock.now.advanced(by: .seconds(30))
                        while stub.requests(model: "stub-slow").isEmpty, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
                        #expect(stub.requests(model: "stub-slow").count == 1, "the first worker never called the model")
                        await CLIProcess.stop(worker, signal: SIGKILL)
                        return execution
                    }
                    let replacement = try CLIProcess.start(
                        ["serve", "--roles", "workers", "--database-url", CLITests.url(database)], environment: CLIProcess.environment(env))
                    try await CLIProcess.stopping(replacement) {
                        let done = try await client.poll("/api/v1/agents/\(agent)/executions/\(execution)", timeout: .seconds(60), until: Self.terminal)
                        #expect(done.json["status"] as? String == "completed")
                        // Give a duplicate the chance to show up before counting.
                        try await Task.sleep(for: .seconds(2))
                        let events = try await Self.events(database, execution: execution)
                        #expect(events.filter(Self.isTerminal).count == 1)
                        let attempts = events.compactMap { if case .started(let started) = $0 { started.attempt } else { nil } }
                        #expect(attempts == [1, 2])
                    }
                }
            }
        }
    }
}
