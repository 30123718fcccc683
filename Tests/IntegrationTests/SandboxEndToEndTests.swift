import Adapters
import Commands
import Events
import Foundation
import Testing

/// The sandbox module through `chronicle serve` and the real servers: command API → event →
/// relay → `code.execute` → sandbox worker → outcome event → read model → query API.
@Suite struct SandboxEndToEndTests {
    static func terminal(_ json: [String: Any]) -> Bool {
        ["completed", "failed", "timed_out", "limit_exceeded"].contains(json["status"] as? String ?? "")
    }

    static func run(_ client: HTTPTestClient, _ body: [String: Any]) async throws -> (id: String, result: HTTPTestClient.Reply) {
        let accepted = try await client.send("POST", "/api/v1/sandbox/execute", json: body)
        #expect(accepted.status == 202, "execute answered \(accepted.status): \(accepted.text)")
        let id = try #require(accepted.json["execution_id"] as? String)
        #expect(accepted.json["status"] as? String == "pending")
        #expect(accepted.headers["location"] == "/api/v1/sandbox/executions/\(id)")
        let done = try await client.poll("/api/v1/sandbox/executions/\(id)", timeout: .seconds(60), until: terminal)
        return (id, done)
    }

    @Test func runsReportTheirOutputTracebacksAndLimitsAndAreTheirOwnersOnly() async throws {
        try await TestServers.withDatabase { database in
            try await AgentsEndToEndTests.withServer(database) { client, _ in
                // Right after the 202 the run is readable (from its stream if the read model lags).
                let accepted = try await client.send("POST", "/api/v1/sandbox/execute", json: ["code": "print(1)"])
                let firstLook = try await client.send("GET", "/api/v1/sandbox/executions/\(accepted.json["execution_id"] as? String ?? "")")
                #expect(firstLook.status == 200)

                let (id, printed) = try await Self.run(client, ["code": "print(1)", "timeout_seconds": 5, "language": "python"])
                #expect(printed.json["status"] as? String == "completed")
                #expect(printed.json["output"] as? String == "1\n")
                #expect(printed.json["exit_code"] as? Int == 0)
                #expect(printed.json["error"] is NSNull)
                #expect((printed.json["duration_ms"] as? Int).map { $0 >= 0 } == true)
                #expect(printed.json["cpu_ms"] is Int)
                #expect((printed.json["peak_memory_bytes"] as? Int ?? 0) > 1 << 20)
                #expect(printed.json["output_truncated"] as? Bool == false)

                let (_, raised) = try await Self.run(client, ["code": "x = 1\nraise ValueError('boom')"])
                #expect(raised.json["status"] as? String == "failed")
                #expect(raised.json["exit_code"] as? Int == 1)
                let traceback = raised.json["error"] as? String ?? ""
                #expect(traceback.hasPrefix("Traceback (most recent call last):"))
                #expect(traceback.contains("File \"main.py\", line 2"))
                #expect(traceback.hasSuffix("ValueError: boom\n"))

                let (_, slept) = try await Self.run(client, ["code": "import time\ntime.sleep(30)", "timeout_seconds": 1])
                #expect(slept.json["status"] as? String == "timed_out")
                #expect((slept.json["error"] as? String)?.contains("after 1 s") == true)

                let (_, greedy) = try await Self.run(client, ["code": "x = bytearray(2 * 1024 ** 3)"])
                #expect(greedy.json["status"] as? String == "limit_exceeded")
                #expect(greedy.json["limit"] as? String == "memory")
                #expect((greedy.json["error"] as? String)?.contains("MemoryError") == true)

                // The events say the same.
                let types = try await database.eventStore.readStream("codeexecution-\(id)", from: 1, direction: .forward, limit: 10).map(\.eventType)
                #expect(types == ["CodeExecutionRequested", "CodeExecutionStarted", "CodeExecutionCompleted"])

                // Another user cannot see it; an admin can.
                let other = try await client.signIn(database)
                #expect(try await other.send("GET", "/api/v1/sandbox/executions/\(id)").status == 404)
                let admin = try await client.signIn(database, roles: [.admin])
                #expect(try await admin.send("GET", "/api/v1/sandbox/executions/\(id)").status == 200)
                #expect(try await client.send("GET", "/api/v1/sandbox/executions/not-a-uuid").status == 404)
                #expect(try await client.send("GET", "/api/v1/sandbox/executions/\(UUID())").status == 404)
            }
        }
    }

    /// A run whose stream has ended but which the read model has not reached yet is shown as it
    /// was requested (pending, with that version's ETag), never as ended without its outcome.
    @Test func aRunTheReadModelHasNotReachedIsShownAsRequestedNeverEndedWithoutItsOutcome() async throws {
        try await TestServers.withDatabase { database in
            // No projectors in this server: the read model never sees the run, and its table
            // does not exist (no projector has ever run against this database).
            try await AgentsEndToEndTests.withServer(database, roles: "api") { client, _ in
                let accepted = try await client.send("POST", "/api/v1/sandbox/execute", json: ["code": "print(1)"])
                #expect(accepted.status == 202)
                let id = try #require(accepted.json["execution_id"] as? String)
                let executionID = try #require(UUID(uuidString: id))
                let handler = CommandHandler<CodeExecutionDecider>(store: database.eventStore)
                let stream = CodeExecutionDecider.streamID(executionID)
                _ = try await handler.handle(.start(executionID: executionID, attempt: 1, now: Date()), on: stream, context: CommandContext())
                let failed = CodeExecutionFailed(
                    executionID: executionID, attempt: 1, error: "boom", output: .empty, exitCode: 1, signal: nil, usage: nil, failedAt: Date())
                _ = try await handler.handle(.finish(.failed(failed), attempt: 1), on: stream, context: CommandContext())

                let shown = try await client.send("GET", "/api/v1/sandbox/executions/\(id)")
                #expect(shown.status == 200)
                #expect(shown.json["status"] as? String == "pending")
                #expect(shown.json["error"] is NSNull)
                #expect(shown.headers["etag"] != nil && shown.headers["etag"] == accepted.headers["etag"])
                // Read models no projector has made yet read as empty, not as server errors.
                let agents = try await client.send("GET", "/api/v1/agents")
                #expect(agents.status == 200 && agents.json["total_count"] as? Int == 0, "\(agents.status): \(agents.text)")
            }
        }
    }

    @Test func badRequestsGetClearProblems() async throws {
        try await TestServers.withDatabase { database in
            try await AgentsEndToEndTests.withServer(database, roles: "api") { client, _ in
                let ruby = try await client.send("POST", "/api/v1/sandbox/execute", json: ["code": "puts 1", "language": "ruby"])
                #expect(ruby.status == 422)
                #expect(ruby.headers["content-type"] == "application/problem+json")
                #expect(ruby.json["code"] as? String == "sandbox.language_unsupported")
                let large = try await client.send("POST", "/api/v1/sandbox/execute", json: ["code": "#" + String(repeating: "x", count: 64 << 10)])
                #expect(large.status == 413)
                #expect(large.json["code"] as? String == "sandbox.code_too_large")
                let long = try await client.send("POST", "/api/v1/sandbox/execute", json: ["code": "print(1)", "timeout_seconds": 31])
                #expect(long.status == 422)
                #expect(long.json["code"] as? String == "sandbox.timeout_range")
                let empty = try await client.send("POST", "/api/v1/sandbox/execute", json: ["code": "  "])
                #expect(empty.status == 422)
                let missing = try await client.send("POST", "/api/v1/sandbox/execute", json: ["timeout_seconds": 3])
                #expect(missing.status == 400)
                // Without workers in this process, health says so and still reports the host.
                let health = try await client.send("GET", "/api/v1/sandbox/health")
                #expect(health.status == 200)
                #expect(health.json["status"] as? String == "no_workers")
                #expect(((health.json["host"] as? [String: Any])?["cpus"] as? Int ?? 0) >= 1)
            }
        }
    }

    @Test func theHealthRouteShowsTheWarmPool() async throws {
        try await TestServers.withDatabase { database in
            try await AgentsEndToEndTests.withServer(database, roles: "api,workers") { client, _ in
                let health = try await client.poll("/api/v1/sandbox/health") {
                    (($0["pool"] as? [String: Any])?["warm"] as? Int) == 2
                }
                #expect(health.json["status"] as? String == "ok")
                let pool = health.json["pool"] as? [String: Any] ?? [:]
                #expect(pool["warm_target"] as? Int == 2 && pool["concurrency"] as? Int == 2)
                let host = health.json["host"] as? [String: Any] ?? [:]
                #expect((host["memory_total_bytes"] as? Int ?? 0) > 0)
            }
        }
    }

    @Test func anAgentRunsPythonThroughTheSandboxTool() async throws {
        try await TestServers.withDatabase { database in
            try await AgentsEndToEndTests.withServer(database) { client, _ in
                let agent = try await AgentsEndToEndTests.createAgent(client, plugins: ["sandbox.python"])
                let execution = try await AgentsEndToEndTests.execute(
                    client, agent: agent, input: "Run this:\n```python\nprint(sum(range(10)) * 2)\n```\n")
                let done = try await client.poll("/api/v1/agents/\(agent)/executions/\(execution)", timeout: .seconds(60), until: AgentsEndToEndTests.terminal)
                #expect(done.json["status"] as? String == "completed")
                #expect((done.json["output"] as? String)?.contains("90") == true, "\(done.json["output"] ?? "")")
                let events = try await AgentsEndToEndTests.events(database, execution: execution)
                let tools = events.compactMap { if case .toolInvoked(let tool) = $0 { tool } else { nil } }
                #expect(tools.count == 1)
                #expect(tools.first?.tool == "sandbox.python")
                #expect(tools.first?.isError == false)
                let result = try JSONSerialization.jsonObject(with: Data((tools.first?.result ?? "{}").utf8)) as? [String: Any]
                #expect(result?["stdout"] as? String == "90\n")
                #expect(result?["status"] as? String == "completed")
                #expect(result?["exit_code"] as? Int == 0)
            }
        }
    }
}
