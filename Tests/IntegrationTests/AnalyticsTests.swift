import Adapters
import Commands
import Events
import Foundation
import PostgresNIO
import Projections
import Testing

/// The analytics read models through `chronicle serve`: exact figures for a known set of runs,
/// scoped to the caller, and a rebuild equal to the live model after real runs with a killed
/// worker (a redelivered message) and a cancellation.
@Suite(.serialized) struct AnalyticsTests {
    static let day = Date(timeIntervalSince1970: 1_790_000_000)  // 2026-09-21

    /// A run's events as a worker would have appended them, with the request's tenant in metadata.
    static func run(
        owner: String, model: String, ending: String, durationMs: Int = 0, calls: Int = 0, tools: Int = 0, at offset: TimeInterval
    ) -> (String, [NewEvent]) {
        let execution = UUID(), agent = UUID(), time = day.addingTimeInterval(offset)
        let metadata = EventMetadata(correlationID: "analytics", userID: owner, tenantID: "t1")
        var events: [any DomainEvent] = [
            AgentExecutionRequested(
                executionID: execution, agentID: agent, ownerID: owner, input: "x", parameters: [:], instructions: "",
                settings: AgentModelSettings(model: model, temperature: 0, maxTokens: 10), plugins: [], timeoutSeconds: 60,
                maxAttempts: 3, requestedAt: time)
        ]
        if ending != "pending" { events.append(AgentExecutionStarted(executionID: execution, agentID: agent, attempt: 1, startedAt: time)) }
        for step in 0..<calls {
            events.append(AgentLLMCallRecorded(
                executionID: execution, agentID: agent, attempt: 1, step: step, model: model, request: .null, response: .null,
                usage: TokenUsage(promptTokens: 10, completionTokens: 5), cost: 0.25, durationMs: 1, recordedAt: time))
        }
        for step in 0..<tools {
            events.append(AgentToolInvoked(
                executionID: execution, agentID: agent, attempt: 1, step: step, callID: "c\(step)", tool: "math.evaluate", arguments: "{}",
                result: "1", isError: false, invokedAt: time))
        }
        switch ending {
        case "completed":
            events.append(AgentExecutionCompleted(
                executionID: execution, agentID: agent, output: "ok", model: model, tokensUsed: TokenUsage(promptTokens: 10 * calls, completionTokens: 5 * calls),
                cost: 0.25 * Double(calls), durationMs: durationMs, completedAt: time))
        case "failed":
            events.append(AgentExecutionFailed(executionID: execution, agentID: agent, error: "no", attempt: 1, retryable: false, failedAt: time))
        case "timed_out": events.append(AgentExecutionTimedOut(executionID: execution, agentID: agent, timeoutSeconds: 60, timedOutAt: time))
        case "cancelled": events.append(AgentExecutionCancelled(executionID: execution, agentID: agent, cancelledAt: time))
        default: break
        }
        return ("agentexecution-\(execution.uuidString.lowercased())", events.map { try! NewEvent($0, id: UUID(), metadata: metadata) })
    }

    @Test func theUsageOfAKnownSetOfRunsIsExactWithNearestRankPercentilesAndScopedToTheCaller() async throws {
        try await TestServers.withDatabase(listen: true) { database in
            let alice = UserDecider.userID(email: "alice-analytics@example.com").uuidString.lowercased()
            let bob = UserDecider.userID(email: "bob-analytics@example.com").uuidString.lowercased()
            var runs: [(String, [NewEvent])] = []
            // Alice: 20 completed runs of 5, 10, …, 100 ms (12 on model a, 8 on b), in shuffled
            // order; 3 failed, 1 timed out, 2 cancelled, 1 never started.
            for (index, ms) in Array(stride(from: 5, through: 100, by: 5)).shuffled().enumerated() {
                runs.append(Self.run(
                    owner: alice, model: ms <= 60 ? "model-a" : "model-b", ending: "completed", durationMs: ms, calls: 2, tools: index % 2,
                    at: Double(index)))
            }
            for ending in ["failed", "failed", "failed", "timed_out", "cancelled", "cancelled", "pending"] {
                runs.append(Self.run(owner: alice, model: "model-a", ending: ending, calls: ending == "failed" ? 1 : 0, at: 100))
            }
            // Bob, the same tenant, the next day: 5 completed runs of 1, 2, 3, 4, 5 s.
            for seconds in 1...5 {
                runs.append(Self.run(owner: bob, model: "model-a", ending: "completed", durationMs: seconds * 1000, calls: 1, at: 86_400))
            }
            for (stream, events) in runs { _ = try await database.eventStore.append(to: stream, expected: .noStream, events: events) }

            try await AgentsEndToEndTests.withServer(database, roles: "api,projectors") { client, _ in
                let member = try await client.signIn(database, email: "alice-analytics@example.com")
                let admin = try await client.signIn(database, email: "admin-analytics@example.com", roles: [.admin])
                let range = "from=2026-09-01&to=2026-10-01"
                let mine = try await member.poll("/api/v1/analytics/usage?\(range)&group_by=model") {
                    ($0["total"] as? [String: Any])?["runs"] as? Int == 27
                }
                #expect(mine.status == 200 && mine.json["scope"] as? String == "user")
                let total = try #require(mine.json["total"] as? [String: Any])
                #expect(total["completed"] as? Int == 20 && total["failed"] as? Int == 4 && total["timed_out"] as? Int == 1)
                #expect(total["cancelled"] as? Int == 2 && total["unfinished"] as? Int == 1)
                #expect(total["model_calls"] as? Int == 43 && total["tool_calls"] as? Int == 10)
                #expect(total["prompt_tokens"] as? Int == 430 && total["completion_tokens"] as? Int == 215 && total["total_tokens"] as? Int == 645)
                #expect(total["cost"] as? Double == 10.75)
                // Nearest rank over 5, 10, …, 100: the 10th and the 19th value.
                #expect(total["duration_ms_p50"] as? Int == 50 && total["duration_ms_p95"] as? Int == 95)
                let groups = try #require(mine.json["groups"] as? [[String: Any]])
                #expect(groups.compactMap { $0["key"] as? String } == ["model-a", "model-b"])
                // model-a: 5 … 60 (12 values): the 6th and the 12th.
                #expect(groups[0]["duration_ms_p50"] as? Int == 30 && groups[0]["duration_ms_p95"] as? Int == 60)
                #expect(groups[1]["runs"] as? Int == 8 && groups[1]["duration_ms_p50"] as? Int == 80)

                // The admin sees the tenant: 25 completed durations; the 13th and the 24th.
                // Bob's runs were appended after alice's: the projector may not have reached them yet.
                let tenant = try await admin.poll("/api/v1/analytics/usage?\(range)&group_by=user") {
                    ($0["total"] as? [String: Any])?["runs"] as? Int == 32
                }
                #expect(tenant.json["scope"] as? String == "tenant")
                let all = try #require(tenant.json["total"] as? [String: Any])
                #expect(all["runs"] as? Int == 32 && all["duration_ms_p50"] as? Int == 65 && all["duration_ms_p95"] as? Int == 4000)
                let users = (tenant.json["groups"] as? [[String: Any]] ?? []).compactMap { $0["key"] as? String }
                #expect(Set(users) == [alice, bob])
                let byDay = try await admin.send("GET", "/api/v1/analytics/usage?\(range)&group_by=day")
                #expect((byDay.json["groups"] as? [[String: Any]] ?? []).compactMap { $0["key"] as? String } == ["2026-09-21", "2026-09-22"])

                // A range outside the runs, and bad input.
                let empty = try await member.send("GET", "/api/v1/analytics/usage?from=2020-01-01&to=2020-02-01")
                #expect(empty.status == 200 && (empty.json["total"] as? [String: Any])?["runs"] as? Int == 0)
                for query in ["group_by=week", "from=yesterday", "from=2026-10-01&to=2026-09-01", "from=2000-01-01&to=2026-01-01"] {
                    let bad = try await member.send("GET", "/api/v1/analytics/usage?\(query)")
                    #expect(bad.status == 400 && bad.headers["content-type"] == "application/problem+json", "\(query): \(bad.status)")
                }
            }
        }
    }

    /// Real runs: one whose worker is killed mid-call (its message redelivered to a replacement),
    /// one cancelled, some sandbox runs with a limit hit; then each analytics model rebuilt into a
    /// new generation equals the live one, row for row.
    @Test func aRebuiltAnalyticsModelEqualsTheLiveOneAfterKillsAndRedeliveries() async throws {
        let stub = StubModelServer(slowSeconds: 3)
        try await stub.run { url in
            try await TestServers.withDatabase(listen: true) { database in
                let env: [String: String?] = ["CHRONICLE_LLM_BASE_URL": url]
                try await AgentsEndToEndTests.withServer(database, roles: "api,projectors,relay", env: env) { client, _ in
                    let slow = try await AgentsEndToEndTests.createAgent(client, model: "stub-slow")
                    let tool = try await AgentsEndToEndTests.createAgent(client, model: "stub-tool", plugins: ["math.evaluate"])
                    let worker = try CLIProcess.start(
                        ["serve", "--roles", "workers", "--database-url", CLITests.url(database)], environment: CLIProcess.environment(env))
                    var executions: [(String, String)] = []
                    try await CLIProcess.stopping(worker) {
                        executions.append((slow, try await AgentsEndToEndTests.execute(client, agent: slow, input: "long task")))
                        let deadline = ContinuousClock.now.advanced(by: .seconds(30))
                        while stub.requests(model: "stub-slow").isEmpty, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
                        await CLIProcess.stop(worker, signal: SIGKILL)
                    }
                    let replacement = try CLIProcess.start(
                        ["serve", "--roles", "workers", "--database-url", CLITests.url(database)], environment: CLIProcess.environment(env))
                    try await CLIProcess.stopping(replacement) {
                        for _ in 0..<3 { executions.append((tool, try await AgentsEndToEndTests.execute(client, agent: tool, input: "six times seven"))) }
                        let cancelled = try await AgentsEndToEndTests.execute(client, agent: slow, input: "cancel me")
                        _ = try await client.send("POST", "/api/v1/agents/\(slow)/executions/\(cancelled)/cancel")
                        executions.append((slow, cancelled))
                        for code in ["print(6 * 7)", "x = bytearray(2 ** 34)", "import sys; sys.exit(3)"] {
                            let accepted = try await client.send("POST", "/api/v1/sandbox/execute", json: ["code": code, "language": "python"])
                            #expect(accepted.status == 202, "\(accepted.text)")
                        }
                        for (agent, execution) in executions {
                            _ = try await client.poll("/api/v1/agents/\(agent)/executions/\(execution)", timeout: .seconds(60), until: AgentsEndToEndTests.terminal)
                        }
                        let attempts = try await AgentsEndToEndTests.events(database, execution: executions[0].1)
                            .compactMap { if case .started(let started) = $0 { started.attempt } else { nil } }
                        #expect(attempts == [1, 2], "the killed run was not redelivered")
                        _ = try await client.poll("/api/v1/analytics/sandbox?group_by=status", timeout: .seconds(60)) {
                            let total = $0["total"] as? [String: Any]
                            return total?["runs"] as? Int == 3 && total?["unfinished"] as? Int == 0
                        }
                        let usage = try await client.poll("/api/v1/analytics/usage", timeout: .seconds(60)) {
                            ($0["total"] as? [String: Any])?["unfinished"] as? Int == 0
                        }
                        let total = usage.json["total"] as? [String: Any]
                        #expect(total?["runs"] as? Int == 5 && total?["cancelled"] as? Int == 1 && total?["completed"] as? Int == 4)
                        #expect(total?["tool_calls"] as? Int == 3)
                    }
                    try await FailoverTests.waitForCatchUp(database, projectors: ["agent_run_analytics", "sandbox_run_analytics"])
                    for (name, key) in [("agent_run_analytics", "execution_id"), ("sandbox_run_analytics", "execution_id")] {
                        let live = try await Self.rows(database, name, key)
                        #expect(!live.isEmpty)
                        let rebuilt = try await CLIProcess.run(["projections", "rebuild", name, "--database-url", CLITests.url(database)])
                        #expect(rebuilt.status == 0, "\(rebuilt.stderr)")
                        #expect(try await Self.rows(database, name, key) == live, "\(name) rebuilt differs from the live model")
                    }
                }
            }
        }
    }

    /// Every row of a read model (through its view), as text, in key order.
    static func rows(_ database: ChronicleDatabase, _ view: String, _ key: String) async throws -> [String] {
        try await database.client.query(
            PostgresQuery(unsafeSQL: "SELECT row_to_json(v)::text FROM \(view) v ORDER BY \(key)"), logger: TestServers.logger
        ).decode(String.self).all()
    }
}
