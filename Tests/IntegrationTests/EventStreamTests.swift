import Adapters
import Commands
import Events
import Foundation
import Testing

/// Server-Sent Events on the push hub, through `chronicle serve`.
@Suite(.serialized) struct EventStreamTests {
    static func port(_ client: HTTPTestClient) -> Int { Int(client.base.split(separator: ":").last!)! }

    static func gauge(_ name: String, in metrics: String) -> Double? {
        metrics.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last!) }
    }

    @Test func twoHundredStreamingClientsCostOneFollowerOfTheLog() async throws {
        try await TestServers.withDatabase { database in
            // No workers: the run stays pending until it is cancelled.
            try await AgentsEndToEndTests.withServer(database, roles: "api,projectors") { member, _ in
                let admin = try await member.signIn(database, roles: [.admin], tier: .enterprise)
                let agent = try await AgentsEndToEndTests.createAgent(admin)
                let execution = try await AgentsEndToEndTests.execute(admin, agent: agent, input: "wait")
                // The run is in its read model before anyone streams it.
                let shown = try await admin.poll("/api/v1/agents/\(agent)/executions/\(execution)") { $0["status"] as? String == "pending" }
                #expect(shown.status == 200)
                let port = Self.port(admin)
                let token = try #require(admin.token)
                var runs: [SSEClient] = []
                var logs: [SSEClient] = []
                for _ in 0..<100 {
                    runs.append(try await SSEClient.open(port: port, path: "/api/v1/agents/\(agent)/executions/\(execution)/stream", token: token))
                    logs.append(try await SSEClient.open(port: port, path: "/api/v1/admin/events/stream?category=agentexecution", token: token))
                }
                for client in runs where !(try await client.waitUntil { $0.ids(event: "status").count == 1 }) {
                    Issue.record("no first status: \(client.text.prefix(600))")
                }
                var metrics = ""
                for _ in 0..<100 {
                    metrics = try await admin.send("GET", "/metrics").text
                    if Self.gauge("chronicle_hub_subscribers", in: metrics) == 200 { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(Self.gauge("chronicle_hub_subscribers", in: metrics) == 200)
                #expect(Self.gauge("chronicle_hub_followers", in: metrics) == 1, "200 clients, one follower of the log")
                // One change reaches every client.
                let cancel = try await admin.send("POST", "/api/v1/agents/\(agent)/executions/\(execution)/cancel")
                #expect(cancel.status == 202)
                for client in runs {
                    #expect(try await client.waitUntil { $0.data(event: "status").last?.contains("\"status\":\"cancelled\"") == true && $0.isEnded }, "\(client.text.suffix(300))")
                }
                for client in logs {
                    #expect(try await client.waitUntil { !$0.ids(event: "AgentExecutionCancelled").isEmpty })
                }
                for client in runs + logs { await client.close() }
            }
        }
    }

    @Test func aSlowClientIsDroppedWithAResumePositionAndResumingFromItMissesNothing() async throws {
        try await TestServers.withDatabase { database in
            try await AgentsEndToEndTests.withServer(database, roles: "api", env: ["CHRONICLE_HUB_BUFFER": "16"]) { member, _ in
                let admin = try await member.signIn(database, roles: [.admin], tier: .enterprise)
                let port = Self.port(admin)
                let token = try #require(admin.token)
                let path = "/api/v1/admin/events/stream?category=agent"
                let fast = try await SSEClient.open(port: port, path: path, token: token)
                let slow = try await SSEClient.open(port: port, path: path, token: token, reading: false)
                try await Task.sleep(for: .milliseconds(500))
                // 200 events of about 90 KB: far more than the slow client's socket buffers.
                let handler = CommandHandler<AgentDecider>(store: database.eventStore)
                let instructions = String(repeating: "x", count: 90_000)
                for n in 0..<200 {
                    let id = UUID()
                    _ = try await handler.handle(
                        .create(CreateAgent(
                            agentID: id, ownerID: "o", name: "agent \(n)", instructions: instructions,
                            settings: AgentModelSettings(model: "offline", temperature: 0.5, maxTokens: 10), now: Date())),
                        on: StreamID(category: AgentDecider.category, id: id), context: CommandContext(userID: "o"))
                    // Paced so that a client that reads keeps within its buffer on a loaded
                    // machine; the one that does not read falls behind regardless.
                    if n % 8 == 7 { try await fast.waitUntil(timeout: .seconds(60)) { $0.ids(event: "AgentCreated").count > n } }
                }
                // The others keep receiving, all of it.
                #expect(try await fast.waitUntil(timeout: .seconds(60)) { $0.ids(event: "AgentCreated").count == 200 })
                let all = fast.ids(event: "AgentCreated")
                #expect(fast.ids(event: "dropped").isEmpty)
                // The slow one, once it reads, has what was buffered, then the drop and where to resume.
                try await slow.resumeReading()
                #expect(try await slow.waitUntil(timeout: .seconds(60)) { !$0.ids(event: "dropped").isEmpty && $0.isEnded })
                let before = slow.ids(event: "AgentCreated")
                let resume = try #require(slow.ids(event: "dropped").first)
                #expect(before.count < 200)
                #expect(before == Array(all.prefix(before.count)))
                // Resuming from that position misses nothing and repeats nothing.
                let resumed = try await SSEClient.open(port: port, path: path, token: token, headers: ["Last-Event-ID": resume])
                #expect(try await resumed.waitUntil(timeout: .seconds(60)) { $0.ids(event: "AgentCreated").count >= 200 - before.count })
                #expect(before + resumed.ids(event: "AgentCreated") == all)
                for client in [fast, slow, resumed] { await client.close() }
            }
        }
    }

    @Test func theLogStreamIsForAdminsAndRefusesAPositionItCannotRead() async throws {
        try await TestServers.withDatabase { database in
            try await AgentsEndToEndTests.withServer(database, roles: "api") { member, _ in
                let forbidden = try await member.send("GET", "/api/v1/admin/events/stream")
                #expect(forbidden.status == 403)
                #expect(forbidden.headers["content-type"] == "application/problem+json")
                let admin = try await member.signIn(database, roles: [.admin], tier: .enterprise)
                let malformed = try await admin.send("GET", "/api/v1/admin/events/stream?after=yesterday")
                #expect(malformed.status == 400)
                #expect(malformed.json["code"] as? String == "request.invalid_query")
                let header = try await admin.send("GET", "/api/v1/admin/events/stream", headers: ["Last-Event-ID": "12/x"])
                #expect(header.status == 400)
            }
        }
    }
}
