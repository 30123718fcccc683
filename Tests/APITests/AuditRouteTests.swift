import API
import Commands
import Composition
import Events
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Prometheus
import Testing

/// The audit routes over the in-memory log: history upcast and attributed, owner isolation, and
/// one request's events across streams.
@Suite struct AuditRouteTests {
    static func app(identity: TestIdentity) -> some ApplicationProtocol {
        buildApplication(
            server: ServerSettings(),
            dependencies: AppDependencies(
                healthChecks: [], registry: PrometheusCollectorRegistry(), identity: identity.dependencies,
                routes: [
                    AgentsController(store: identity.store, queries: AgentRouteTests.NoReadModels(), hub: identity.hub).mount,
                    AuditController(store: identity.store, registry: EventRegistry.chronicle, deciders: Modules.deciders).mount,
                ]
            ) { .init(ready: true) },
            logger: Logger(label: "test"))
    }

    @Test func anAgentsStateAsOfAVersionOrATimeAndTheDiffBetweenTwoPoints() async throws {
        let identity = try await TestIdentity()
        let alice = try await identity.bearer("alice@example.com")
        let bob = try await identity.bearer("bob@example.com")
        let admin = try await identity.bearer("admin@example.com")
        try await Self.app(identity: identity).test(.router) { client in
            let agent = try await client.execute(
                uri: "/api/v1/agents", method: .post, headers: alice, body: AgentRouteTests.body(["name": "A", "instructions": "first"])
            ) { try #require(AgentRouteTests.json($0.body)["id"] as? String) }
            try await Task.sleep(for: .milliseconds(20))
            let between = Timestamp.format(Date())
            try await Task.sleep(for: .milliseconds(20))
            try await client.execute(
                uri: "/api/v1/agents/\(agent)", method: .patch, headers: alice, body: AgentRouteTests.body(["name": "B"])
            ) { #expect($0.status == .ok) }
            let stream = "/api/v1/audit/streams/agent-\(agent)"
            try await client.execute(uri: "\(stream)/state?version=1", method: .get, headers: alice) { response in
                #expect(response.status == .ok)
                let body = AgentRouteTests.json(response.body)
                let state = body["state"] as? [String: Any]
                #expect(body["version"] as? Int == 1)
                #expect(state?["name"] as? String == "A" && state?["instructions"] as? String == "first" && state?["status"] as? String == "active")
                #expect((state?["settings"] as? [String: Any])?["model"] != nil)
            }
            try await client.execute(uri: "\(stream)/state", method: .get, headers: alice) { response in
                let body = AgentRouteTests.json(response.body)
                #expect(body["version"] as? Int == 2 && (body["state"] as? [String: Any])?["name"] as? String == "B")
            }
            // A time: the last event recorded at or before it.
            try await client.execute(uri: "\(stream)/state?at=\(between)", method: .get, headers: alice) { response in
                let body = AgentRouteTests.json(response.body)
                #expect(body["version"] as? Int == 1 && (body["state"] as? [String: Any])?["name"] as? String == "A")
            }
            try await client.execute(uri: "\(stream)/state?at=2000-01-01T00:00:00Z", method: .get, headers: alice) { response in
                let body = AgentRouteTests.json(response.body)
                #expect(body["version"] as? Int == 0 && (body["state"] as? [String: Any])?["status"] as? String == "absent")
            }
            try await client.execute(uri: "\(stream)/diff?from_version=1&to_version=2", method: .get, headers: alice) { response in
                #expect(response.status == .ok)
                let body = AgentRouteTests.json(response.body)
                let changes = body["changes"] as? [[String: Any]] ?? []
                #expect(changes.count == 1)
                #expect(changes.first?["path"] as? String == "/name" && changes.first?["before"] as? String == "A")
                #expect(changes.first?["after"] as? String == "B" && changes.first?["kind"] as? String == "changed")
                #expect((body["from"] as? [String: Any])?["version"] as? Int == 1 && (body["to"] as? [String: Any])?["version"] as? Int == 2)
            }
            // From the beginning (version 0): the creation is every field set.
            try await client.execute(uri: "\(stream)/diff?to_at=\(between)", method: .get, headers: alice) { response in
                let changes = AgentRouteTests.json(response.body)["changes"] as? [[String: Any]] ?? []
                let paths = changes.compactMap { $0["path"] as? String }
                #expect(paths.contains("/name") && paths.contains("/status") && paths.contains("/owner_id"))
            }
            for (query, status) in [("state?version=3", HTTPResponse.Status.unprocessableContent), ("state?version=-1", .badRequest),
                                    ("state?at=yesterday", .badRequest), ("state?version=1&at=2026-01-01T00:00:00Z", .badRequest),
                                    ("diff?from_version=x", .badRequest)] {
                try await client.execute(uri: "\(stream)/\(query)", method: .get, headers: alice) { response in
                    #expect(response.status == status, "\(query)")
                    #expect(response.headers[.contentType] == "application/problem+json", "\(query)")
                }
            }
            // Owner isolation: another member's state and diff are 404, an admin reads them.
            for uri in ["\(stream)/state", "\(stream)/diff", "/api/v1/audit/streams/agent-\(UUID())/state"] {
                try await client.execute(uri: uri, method: .get, headers: bob) { #expect($0.status == .notFound, "\(uri)") }
            }
            try await client.execute(uri: "\(stream)/diff", method: .get, headers: admin) { #expect($0.status == .ok) }
        }
    }

    @Test func aStreamsHistoryIsUpcastAttributedAndItsOwnersOnly() async throws {
        let identity = try await TestIdentity()
        let alice = try await identity.bearer("alice@example.com")
        let bob = try await identity.bearer("bob@example.com")
        let admin = try await identity.bearer("admin@example.com")
        var withRequestID = alice
        withRequestID[HTTPField.Name("X-Request-ID")!] = "req-audit-1"
        let headers = withRequestID
        // A v1 AgentCreated (the seeds' flat shape), stored as history would hold it.
        let legacy = UUID()
        let owner = UserDecider.userID(email: "alice@example.com").uuidString.lowercased()
        _ = try await identity.store.append(to: "agent-\(legacy.uuidString.lowercased())", expected: .noStream, events: [NewEvent(
            eventID: UUID(), eventType: "AgentCreated", schemaVersion: 1,
            data: Data(#"{"agent_id": "\#(legacy.uuidString)", "owner_id": "\#(owner)", "name": "Old", "instructions": "", "model": "gpt-4", "created_at": "2025-01-01T00:00:00.000Z"}"#.utf8),
            metadata: EventMetadata(correlationID: "legacy", userID: owner))])
        try await Self.app(identity: identity).test(.router) { client in
            let agent = try await client.execute(
                uri: "/api/v1/agents", method: .post, headers: headers, body: AgentRouteTests.body(["name": "A", "instructions": "x"])
            ) { try #require(AgentRouteTests.json($0.body)["id"] as? String) }
            try await client.execute(
                uri: "/api/v1/agents/\(agent)", method: .patch, headers: alice, body: AgentRouteTests.body(["name": "B"])
            ) { #expect($0.status == .ok) }
            try await client.execute(uri: "/api/v1/audit/streams/agent-\(agent)", method: .get, headers: alice) { response in
                #expect(response.status == .ok)
                let body = AgentRouteTests.json(response.body)
                let events = body["events"] as? [[String: Any]] ?? []
                #expect(events.compactMap { $0["type"] as? String } == ["AgentCreated", "AgentRenamed"])
                #expect(events.first?["correlation_id"] as? String == "req-audit-1")
                #expect(events.first?["user_id"] as? String == owner)
                #expect(body["owner_id"] as? String == owner)
            }
            try await client.execute(uri: "/api/v1/audit/streams/agent-\(agent)?limit=1", method: .get, headers: alice) { response in
                #expect(AgentRouteTests.json(response.body)["next_from_version"] as? Int == 2)
            }
            try await client.execute(uri: "/api/v1/audit/streams/agent-\(legacy.uuidString.lowercased())", method: .get, headers: alice) { response in
                let events = AgentRouteTests.json(response.body)["events"] as? [[String: Any]] ?? []
                let payload = events.first?["payload"] as? [String: Any]
                #expect(events.first?["stored_schema_version"] as? Int == 1)
                #expect((payload?["settings"] as? [String: Any])?["model"] as? String == "gpt-4")  // upcast to v2
            }
            for uri in ["/api/v1/audit/streams/agent-\(agent)", "/api/v1/audit/streams/agent-\(UUID())", "/api/v1/audit/streams/nodash"] {
                try await client.execute(uri: uri, method: .get, headers: bob) { #expect($0.status == .notFound) }
            }
            try await client.execute(uri: "/api/v1/audit/streams/agent-\(agent)", method: .get, headers: admin) { #expect($0.status == .ok) }
            // One request's events: alice sees hers, bob sees none of them.
            try await client.execute(uri: "/api/v1/audit/correlations/req-audit-1", method: .get, headers: alice) { response in
                let events = AgentRouteTests.json(response.body)["events"] as? [[String: Any]] ?? []
                #expect(events.compactMap { $0["stream_id"] as? String } == ["agent-\(agent)"])
            }
            for uri in ["/api/v1/audit/correlations/a%00b", "/api/v1/audit/streams/agent-%00", "/api/v1/audit/streams/agent-\(String(repeating: "x", count: 300))"] {
                try await client.execute(uri: uri, method: .get, headers: alice) { #expect([.ok, .notFound].contains($0.status), "\(uri)") }
            }
            try await client.execute(uri: "/api/v1/audit/correlations/req-audit-1", method: .get, headers: bob) { response in
                #expect(response.status == .ok)
                #expect((AgentRouteTests.json(response.body)["events"] as? [Any])?.isEmpty == true)
            }
        }
    }
}
