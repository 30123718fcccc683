import API
import Commands
import Events
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Projections
import Workers
import Prometheus
import Testing

/// The Agents routes through `app.test(.router)` with the in-memory event store and empty read
/// models: status codes, headers and problem documents of the command side.
@Suite struct AgentRouteTests {
    /// A host whose usage never changes (route tests read no /proc).
    struct TestHost: HostProbe {
        func usage() -> HostUsage { HostUsage(cpus: 2, load1: 0.5, memoryTotalBytes: 1 << 30, memoryAvailableBytes: 1 << 29) }
    }

    struct NoSandboxReadModel: SandboxQueries {
        func execution(_ id: UUID) async throws -> CodeExecutionView? { nil }
        func waitForExecutions(_ checkpoint: Checkpoint, timeout: Duration) async throws -> Bool { true }
    }

    struct NoReadModels: AgentQueries {
        func agents(owner: String?, page: Int, pageSize: Int) async throws -> Page<AgentView> { Page(items: [], page: page, pageSize: pageSize, totalCount: 0) }
        func agent(_ id: UUID) async throws -> AgentView? { nil }
        func executions(agent: UUID, status: String?, page: Int, pageSize: Int) async throws -> Page<ExecutionView> {
            Page(items: [], page: page, pageSize: pageSize, totalCount: 0)
        }
        func execution(_ id: UUID) async throws -> ExecutionView? { nil }
        func usage(agent: UUID, days: Int) async throws -> [AgentUsageDay] { [] }
        func typicalDurationMs(agent: UUID) async throws -> Int? { nil }
        func waitForAgents(_ checkpoint: Checkpoint, timeout: Duration) async throws -> Bool { true }
        func waitForExecutions(_ checkpoint: Checkpoint, timeout: Duration) async throws -> Bool { true }
    }

    static func app(identity: TestIdentity) -> some ApplicationProtocol {
        buildApplication(
            server: ServerSettings(),
            dependencies: AppDependencies(
                healthChecks: [], registry: PrometheusCollectorRegistry(), identity: identity.dependencies,
                routes: [AgentsController(store: identity.store, queries: NoReadModels(), hub: identity.hub).mount]
            ) { .init(ready: true) },
            logger: Logger(label: "test"))
    }

    /// The app, and a member's `Authorization` header.
    static func app() async throws -> (some ApplicationProtocol, HTTPFields) {
        let identity = try await TestIdentity()
        return (app(identity: identity), try await identity.bearer("alice@example.com"))
    }

    static func json(_ buffer: ByteBuffer) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(buffer: buffer)) as? [String: Any]) ?? [:]
    }

    static func body(_ object: [String: Any]) -> ByteBuffer {
        ByteBuffer(bytes: try! JSONSerialization.data(withJSONObject: object))
    }

    @Test func createAnswers201WithLocationETagAndPosition() async throws {
        let (app, auth) = try await Self.app()
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/v1/agents", method: .post, headers: auth, body: Self.body(["name": "A", "plugins": ["time.now"]])) { response in
                #expect(response.status == .created)
                let body = Self.json(response.body)
                let id = try #require(body["id"] as? String)
                #expect(response.headers[.location] == "/api/v1/agents/\(id)")
                #expect(response.headers[.eTag] == "\"1\"")
                #expect(response.headers[HTTPField.Name("X-Chronicle-Position")!] != nil)
                #expect(body["status"] as? String == "active")
                #expect(body["model"] as? String == "offline")
                #expect(body["created_at"] is String)
            }
        }
    }

    @Test func theSameIdempotencyKeyCreatesOneAgent() async throws {
        let (app, auth) = try await Self.app()
        try await app.test(.router) { client in
            var ids: [String] = []
            for _ in 0..<2 {
                try await client.execute(
                    uri: "/api/v1/agents", method: .post, headers: auth + [HTTPField.Name("Idempotency-Key")!: "k-1"], body: Self.body(["name": "A"])
                ) { response in
                    #expect(response.status == .created)
                    ids.append(Self.json(response.body)["id"] as? String ?? "")
                }
            }
            #expect(ids[0] == ids[1])
        }
    }

    @Test(arguments: [
        ("{", 400, "request.malformed"), ("{\"name\": 5}", 400, "request.malformed"), ("{}", 400, "request.malformed"),
        ("{\"name\": \"\"}", 422, "agent.name_length"), ("{\"name\": \"a\", \"temperature\": 3}", 422, "agent.temperature_range"),
        ("{\"name\": \"a\", \"plugins\": [\"web.search\"]}", 422, "agent.plugin_unknown"),
    ])
    func badInputIsAProblemNeverA500(_ body: String, _ status: Int, _ code: String) async throws {
        let (app, auth) = try await Self.app()
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/v1/agents", method: .post, headers: auth, body: ByteBuffer(string: body)) { response in
                #expect(response.status.code == status)
                #expect(response.headers[.contentType] == "application/problem+json")
                #expect(Self.json(response.body)["code"] as? String == code)
            }
        }
    }

    @Test func aStaleIfMatchIs412AndAMalformedOneIs400() async throws {
        let (app, auth) = try await Self.app()
        try await app.test(.router) { client in
            let id = try await client.execute(uri: "/api/v1/agents", method: .post, headers: auth, body: Self.body(["name": "A"])) { Self.json($0.body)["id"] as! String }
            try await client.execute(
                uri: "/api/v1/agents/\(id)", method: .patch, headers: auth + [.ifMatch: "\"7\""], body: Self.body(["name": "B"])
            ) { response in
                #expect(response.status == .preconditionFailed)
            }
            try await client.execute(
                uri: "/api/v1/agents/\(id)", method: .patch, headers: auth + [.ifMatch: "yesterday"], body: Self.body(["name": "B"])
            ) { response in
                #expect(response.status == .badRequest)
                #expect(Self.json(response.body)["code"] as? String == "request.invalid_if_match")
            }
            try await client.execute(
                uri: "/api/v1/agents/\(id)", method: .patch, headers: auth + [.ifMatch: "\"1\""], body: Self.body(["name": "B"])
            ) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.eTag] == "\"2\"")
            }
        }
    }

    @Test func aDeletedAgentCannotBeExecuted() async throws {
        let (app, auth) = try await Self.app()
        try await app.test(.router) { client in
            let id = try await client.execute(uri: "/api/v1/agents", method: .post, headers: auth, body: Self.body(["name": "A"])) { Self.json($0.body)["id"] as! String }
            try await client.execute(uri: "/api/v1/agents/\(id)", method: .delete, headers: auth) { #expect($0.status == .accepted) }
            try await client.execute(uri: "/api/v1/agents/\(id)/execute", method: .post, headers: auth, body: Self.body(["input": "hi"])) { response in
                #expect(response.status == .notFound)
            }
        }
    }

    @Test func executeAnswers202WithTheExecutionAndCancelEndsIt() async throws {
        let (app, auth) = try await Self.app()
        try await app.test(.router) { client in
            let id = try await client.execute(uri: "/api/v1/agents", method: .post, headers: auth, body: Self.body(["name": "A"])) { Self.json($0.body)["id"] as! String }
            let execution = try await client.execute(uri: "/api/v1/agents/\(id)/execute", method: .post, headers: auth, body: Self.body(["input": "hi"])) { response in
                #expect(response.status == .accepted)
                let body = Self.json(response.body)
                #expect(body["status"] as? String == "pending")
                #expect(body["estimated_time"] as? Int == 2)
                return body["execution_id"] as! String
            }
            try await client.execute(uri: "/api/v1/agents/\(id)/executions/\(execution)/cancel", method: .post, headers: auth) { response in
                #expect(response.status == .accepted)
                #expect(Self.json(response.body)["status"] as? String == "cancelled")
            }
            try await client.execute(uri: "/api/v1/agents/\(id)/executions/\(execution)/cancel", method: .post, headers: auth) { response in
                #expect(response.status == .conflict)
                #expect(Self.json(response.body)["code"] as? String == "execution.terminal")
            }
            // The execution belongs to this agent only.
            try await client.execute(uri: "/api/v1/agents/\(UUID())/executions/\(execution)/cancel", method: .post, headers: auth) { response in
                #expect(response.status == .notFound)
            }
        }
    }

    @Test(arguments: ["/api/v1/agents?page=0", "/api/v1/agents?pageSize=101", "/api/v1/agents?page=x", "/api/v1/agents/\(UUID())/executions?status=done"])
    func badQueriesAre400(_ uri: String) async throws {
        let (app, auth) = try await Self.app()
        try await app.test(.router) { client in
            try await client.execute(uri: uri, method: .get, headers: auth) { response in
                #expect(response.status == .badRequest)
                #expect(Self.json(response.body)["code"] as? String == "request.invalid_query")
            }
        }
    }

    @Test(arguments: ["/api/v1/agents/not-a-uuid", "/api/v1/agents/\(UUID())", "/api/v1/agents/\(UUID())/executions/\(UUID())"])
    func unknownOrMalformedIdsAre404(_ uri: String) async throws {
        let (app, auth) = try await Self.app()
        try await app.test(.router) { client in
            try await client.execute(uri: uri, method: .get, headers: auth) { #expect($0.status == .notFound) }
        }
    }

    /// Every route is in the OpenAPI document and every documented operation is a route.
    @Test func routesAndTheOpenAPIDocumentAgree() async throws {
        let identity = try await TestIdentity()
        let router = buildRouter(AppDependencies(
            healthChecks: [], registry: PrometheusCollectorRegistry(), identity: identity.dependencies,
            routes: [
                AgentsController(store: identity.store, queries: NoReadModels(), hub: identity.hub).mount,
                ParkedController(parking: ParkedRouteTests.Lot()).mount,
                SandboxController(store: identity.store, queries: NoSandboxReadModel(), runner: nil, host: AgentRouteTests.TestHost()).mount,
                EventStreamController(hub: identity.hub).mount,
                PersonaRouteTests.controller(identity).mount,
                AuditController(store: identity.store, registry: EventRegistry()).mount,
                AnalyticsController(queries: NoAnalytics()).mount,
                AuditRunsController(store: identity.store, replayer: AgentRunReplay(logger: Logger(label: "test")), personas: nil).mount,
                SqlController(store: identity.store, schema: { SqlSchema(relations: []) }).mount,
                WorkflowRouteTests.controller(identity).mount,
                WorkflowRouteTests.live(identity).mount,
                KnowledgeRouteTests.controller(identity).mount,
            ]
        ) { .init(ready: true) })
        let routed = Set(router.routes.map { route -> String in
            let path = route.path.description.split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }
            return "\(route.method.rawValue) /\(path.joined(separator: "/"))"
        })
        let documented = try Self.documentedOperations()
        #expect(routed.subtracting(documented).sorted() == [], "routes missing from openapi.yaml")
        #expect(documented.subtracting(routed).sorted() == [], "documented operations with no route")
    }

    /// `METHOD /path` for each operation of the document (our own YAML layout: paths at two
    /// spaces, methods at four).
    static func documentedOperations() throws -> Set<String> {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/API/openapi.yaml")
        var operations = Set<String>()
        var path: String?
        for line in try String(contentsOf: url, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("  /"), line.hasSuffix(":") {
                path = String(line.dropFirst(2).dropLast())
            } else if !line.hasPrefix(" ") {
                path = nil
            } else if let path, line.hasPrefix("    "), !line.hasPrefix("     "),
                let method = ["get", "post", "patch", "delete", "put"].first(where: { line == "    \($0):" })
            {
                operations.insert("\(method.uppercased()) \(path)")
            }
        }
        return operations
    }
}

/// Analytics with no runs: the route tests only need the routes.
struct NoAnalytics: AnalyticsQueries {
    func usage(_ scope: AnalyticsScope, from: Date, to: Date, groupBy: UsageGrouping) async throws -> (groups: [JSONValue], total: JSONValue) {
        ([], .object(["runs": .number(0)]))
    }
    func sandbox(_ scope: AnalyticsScope, from: Date, to: Date, groupBy: SandboxGrouping) async throws -> (groups: [JSONValue], total: JSONValue) {
        ([], .object(["runs": .number(0)]))
    }
}
