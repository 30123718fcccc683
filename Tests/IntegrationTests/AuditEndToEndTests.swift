import Adapters
import Commands
import Events
import Foundation
import Testing

/// The audit routes through `chronicle serve` on Postgres: one execute request's events across
/// the run's stream, the worker's attempts and its outcome, found by the request's id.
@Suite(.serialized) struct AuditEndToEndTests {
    @Test func theCorrelationViewOfOneExecuteRequestShowsEverythingItCaused() async throws {
        try await TestServers.withDatabase { database in
            try await AgentsEndToEndTests.withServer(database) { client, _ in
                let agent = try await AgentsEndToEndTests.createAgent(client, plugins: ["math.evaluate"])
                let accepted = try await client.send(
                    "POST", "/api/v1/agents/\(agent)/execute", json: ["input": "What is (2+3)*7?"], headers: ["X-Request-ID": "audit-e2e-1"])
                #expect(accepted.status == 202, "\(accepted.text)")
                let execution = try #require(accepted.json["execution_id"] as? String)
                _ = try await client.poll("/api/v1/agents/\(agent)/executions/\(execution)", until: AgentsEndToEndTests.terminal)
                let view = try await client.send("GET", "/api/v1/audit/correlations/audit-e2e-1")
                #expect(view.status == 200, "\(view.text)")
                let events = view.json["events"] as? [[String: Any]] ?? []
                #expect(events.compactMap { $0["type"] as? String } == [
                    "AgentExecutionRequested", "AgentExecutionStarted", "AgentLLMCallRecorded", "AgentToolInvoked", "AgentLLMCallRecorded",
                    "AgentExecutionCompleted",
                ])
                #expect(Set(events.compactMap { $0["stream_id"] as? String }) == ["agentexecution-\(execution)"])
                let positions = events.compactMap { $0["position"] as? Int }
                #expect(positions == positions.sorted())
                let history = try await client.send("GET", "/api/v1/audit/streams/agentexecution-\(execution)")
                #expect((history.json["events"] as? [Any])?.count == events.count)
                #expect(history.json["owner_id"] as? String != nil)
                let other = try await client.signIn(database, email: "mallory@example.com")
                #expect(try await other.send("GET", "/api/v1/audit/streams/agentexecution-\(execution)").status == 404)
                let hidden = try await other.send("GET", "/api/v1/audit/correlations/audit-e2e-1")
                #expect((hidden.json["events"] as? [Any])?.isEmpty == true)
            }
        }
    }

    /// A run copied into a new stream with another input: its recorded calls no longer match
    /// what the worker asks, as if the log and the code disagreed.
    static func copyWithOtherInput(_ database: ChronicleDatabase, _ execution: String, input: String) async throws -> String {
        let copy = UUID()
        let events = try await database.eventStore.readStream("agentexecution-\(execution)", from: 1, direction: .forward, limit: 1000)
        let renamed = try events.map { event -> NewEvent in
            var text = String(decoding: event.data, as: UTF8.self)
            for spelling in [execution.lowercased(), execution.uppercased()] {
                text = text.replacingOccurrences(of: spelling, with: copy.uuidString.lowercased())
            }
            if event.eventType == "AgentExecutionRequested" {
                text = text.replacingOccurrences(of: "What is six times seven?", with: input)
            }
            return NewEvent(eventID: UUID(), eventType: event.eventType, schemaVersion: event.schemaVersion, data: Data(text.utf8), metadata: event.metadata)
        }
        _ = try await database.eventStore.append(to: "agentexecution-\(copy.uuidString.lowercased())", expected: .noStream, events: renamed)
        return copy.uuidString.lowercased()
    }

    @Test func aReplayOfARunWithToolCallsIsIdenticalAndADivergentRecordingSaysWhere() async throws {
        let stub = StubModelServer()
        try await stub.run { url in
            try await TestServers.withDatabase { database in
                try await AgentsEndToEndTests.withServer(database, env: ["CHRONICLE_LLM_BASE_URL": url]) { client, _ in
                    let agent = try await AgentsEndToEndTests.createAgent(client, model: "stub-tool", plugins: ["math.evaluate"])
                    let execution = try await AgentsEndToEndTests.execute(client, agent: agent, input: "What is six times seven?")
                    _ = try await client.poll("/api/v1/agents/\(agent)/executions/\(execution)", until: AgentsEndToEndTests.terminal)
                    let asked = stub.requests().count

                    let replay = try await client.send("POST", "/api/v1/audit/executions/\(execution)/replay")
                    #expect(replay.status == 200, "\(replay.text)")
                    #expect(replay.json["identical"] as? Bool == true, "\(replay.text)")
                    let original = try #require(replay.json["original"] as? [String: Any])
                    let replayed = try #require(replay.json["replay"] as? [String: Any])
                    #expect(original["hash"] as? String == replayed["hash"] as? String)
                    #expect((original["tool_calls"] as? [[String: Any]])?.first?["result"] as? String == "42")
                    #expect(original["model_calls"] as? Int == 2 && replayed["model_calls"] as? Int == 2)
                    #expect((replayed["outcome"] as? [String: Any])?["output"] as? String == "The answer is 42.")
                    #expect(replay.json["divergence"] is NSNull)
                    #expect((replay.json["model"] as? String)?.hasPrefix("recorded") == true)
                    #expect(stub.requests().count == asked, "the replay called the model service")

                    // The same from the command line, and the run's state and history.
                    let url = CLITests.url(database)
                    let cli = try await CLIProcess.run(["audit", "replay", execution, "--database-url", url])
                    #expect(cli.status == 0, "\(cli.stdout) \(cli.stderr)")
                    let printed = try JSONSerialization.jsonObject(with: Data(cli.stdout.utf8)) as? [String: Any]
                    #expect(printed?["identical"] as? Bool == true && (printed?["original"] as? [String: Any])?["hash"] as? String == original["hash"] as? String)
                    let state = try await CLIProcess.run(["audit", "state", "agentexecution-\(execution)", "--version", "2", "--database-url", url])
                    let folded = try JSONSerialization.jsonObject(with: Data(state.stdout.utf8)) as? [String: Any]
                    #expect(state.status == 0 && folded?["version"] as? Int == 2, "\(state.stdout) \(state.stderr)")
                    #expect((folded?["state"] as? [String: Any])?["status"] as? String == "running")
                    let diff = try await CLIProcess.run(["audit", "diff", "agentexecution-\(execution)", "--from-version", "2", "--database-url", url])
                    let changes = (try JSONSerialization.jsonObject(with: Data(diff.stdout.utf8)) as? [String: Any])?["changes"] as? [[String: Any]]
                    #expect(changes?.contains { $0["path"] as? String == "/status" && $0["after"] as? String == "completed" } == true, "\(diff.stdout)")
                    let lines = try await CLIProcess.run(["audit", "stream", "agentexecution-\(execution)", "--database-url", url])
                    #expect(lines.status == 0 && lines.stdout.split(separator: "\n").count == 6, "\(lines.stdout)")
                    let beyond = try await CLIProcess.run(["audit", "state", "agentexecution-\(execution)", "--version", "99", "--database-url", url])
                    #expect(beyond.status == 1 && beyond.stderr.contains("newest version is 6"), "\(beyond.stderr)")

                    // The same recording under another input: the first call differs, at the user's message.
                    let copy = try await Self.copyWithOtherInput(database, execution, input: "What is six times eight?")
                    let diverged = try await client.send("POST", "/api/v1/audit/executions/\(copy)/replay")
                    #expect(diverged.status == 200 && diverged.json["identical"] as? Bool == false, "\(diverged.text)")
                    let divergence = try #require(diverged.json["divergence"] as? [String: Any])
                    #expect(divergence["call"] as? Int == 1 && divergence["pointer"] as? String == "/messages/1/content", "\(divergence)")
                    #expect(divergence["recorded"] as? String == "What is six times seven?" && divergence["replayed"] as? String == "What is six times eight?")
                    #expect(((diverged.json["replay"] as? [String: Any])?["outcome"] as? [String: Any])?["status"] as? String == "failed")

                    let other = try await client.signIn(database, email: "mallory-replay@example.com")
                    #expect(try await other.send("POST", "/api/v1/audit/executions/\(execution)/replay").status == 404)
                    #expect(try await client.send("POST", "/api/v1/audit/executions/\(UUID())/replay").status == 404)
                }
            }
        }
    }

    @Test func aForkWithAnotherModelFromItsSecondCallIsANewRunComparedWithItsOrigin() async throws {
        let stub = StubModelServer()
        try await stub.run { url in
            try await TestServers.withDatabase { database in
                try await AgentsEndToEndTests.withServer(database, env: ["CHRONICLE_LLM_BASE_URL": url]) { client, _ in
                    let agent = try await AgentsEndToEndTests.createAgent(client, model: "stub-tool", plugins: ["math.evaluate"])
                    let origin = try await AgentsEndToEndTests.execute(client, agent: agent, input: "What is six times seven?")
                    _ = try await client.poll("/api/v1/agents/\(agent)/executions/\(origin)", until: AgentsEndToEndTests.terminal)

                    let forked = try await client.send(
                        "POST", "/api/v1/audit/executions/\(origin)/fork", json: ["from_call": 2, "model": "stub-echo"])
                    #expect(forked.status == 202, "\(forked.text)")
                    #expect(forked.json["forked_from"] as? String == origin && forked.json["from_call"] as? Int == 2)
                    let fork = try #require(forked.json["execution_id"] as? String)
                    #expect(forked.headers["location"] == "/api/v1/agents/\(agent)/executions/\(fork)")
                    let done = try await client.poll("/api/v1/agents/\(agent)/executions/\(fork)", until: AgentsEndToEndTests.terminal)
                    #expect(done.json["status"] as? String == "completed")
                    #expect(done.json["forked_from"] as? String == origin && done.json["from_call"] as? Int == 2, "\(done.text)")
                    let listed = try await client.send("GET", "/api/v1/agents/\(agent)/executions")
                    let row = (listed.json["items"] as? [[String: Any]])?.first { $0["execution_id"] as? String == fork }
                    #expect(row?["forked_from"] as? String == origin && row?["from_call"] as? Int == 2, "\(listed.text)")
                    // It started from call 2's conversation: the tool's answer was already in it.
                    let sent = try #require(stub.requests(model: "stub-echo").first)
                    let messages = (try JSONSerialization.jsonObject(with: sent.raw) as? [String: Any])?["messages"] as? [[String: Any]] ?? []
                    #expect(messages.compactMap { $0["role"] as? String } == ["system", "user", "assistant", "tool"], "\(messages)")
                    #expect(messages.last?["content"] as? String == "42")

                    let comparison = try await client.send("GET", "/api/v1/audit/executions/\(fork)/comparison")
                    #expect(comparison.status == 200, "\(comparison.text)")
                    let before = try #require(comparison.json["origin"] as? [String: Any])
                    let after = try #require(comparison.json["fork"] as? [String: Any])
                    #expect(before["output"] as? String == "The answer is 42." && after["output"] as? String == "stub: What is six times seven?")
                    #expect(before["model"] as? String == "stub-tool" && after["model"] as? String == "stub-echo")
                    #expect(before["total_tokens"] as? Int == 36 && after["total_tokens"] as? Int == 18)
                    #expect(comparison.json["same_output"] as? Bool == false && comparison.json["from_call"] as? Int == 2)
                    #expect((comparison.json["delta"] as? [String: Any])?["total_tokens"] as? Int == -18)
                    #expect(before["duration_ms"] is Int && after["duration_ms"] is Int && before["cost"] != nil)

                    // Other instructions from the first call: the run's own system message.
                    let terse = try await client.send(
                        "POST", "/api/v1/audit/executions/\(origin)/fork", json: ["from_call": 1, "model": "stub-echo", "instructions": "Be terse."])
                    #expect(terse.status == 202, "\(terse.text)")
                    let terseRun = try #require(terse.json["execution_id"] as? String)
                    _ = try await client.poll("/api/v1/agents/\(agent)/executions/\(terseRun)", until: AgentsEndToEndTests.terminal)
                    let first = try #require(stub.requests(model: "stub-echo").last)
                    let firstMessages = (try JSONSerialization.jsonObject(with: first.raw) as? [String: Any])?["messages"] as? [[String: Any]] ?? []
                    #expect(firstMessages.first?["content"] as? String == "Be terse." && firstMessages.count == 2)

                    // From the command line: a fork the workers take up like any run.
                    let cli = try await CLIProcess.run(
                        ["audit", "fork", origin, "--from-call", "2", "--model", "stub-echo", "--database-url", CLITests.url(database)])
                    #expect(cli.status == 0, "\(cli.stdout) \(cli.stderr)")
                    let cliFork = try #require((try JSONSerialization.jsonObject(with: Data(cli.stdout.utf8)) as? [String: Any])?["execution_id"] as? String)
                    let cliDone = try await client.poll("/api/v1/agents/\(agent)/executions/\(cliFork)", until: AgentsEndToEndTests.terminal)
                    #expect(cliDone.json["output"] as? String == "stub: What is six times seven?")

                    // Refusals: a call the run never made, a run that is no fork, another owner.
                    let tooFar = try await client.send("POST", "/api/v1/audit/executions/\(origin)/fork", json: ["from_call": 3])
                    #expect(tooFar.status == 422 && tooFar.headers["content-type"] == "application/problem+json", "\(tooFar.text)")
                    #expect(try await client.send("GET", "/api/v1/audit/executions/\(origin)/comparison").status == 422)
                    let other = try await client.signIn(database, email: "mallory-fork@example.com")
                    #expect(try await other.send("POST", "/api/v1/audit/executions/\(origin)/fork", json: ["from_call": 1]).status == 404)
                    #expect(try await other.send("GET", "/api/v1/audit/executions/\(fork)/comparison").status == 404)
                }
            }
        }
    }
}
