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
}
