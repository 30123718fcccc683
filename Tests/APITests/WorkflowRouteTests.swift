import API
import Commands
import Events
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Projections
import Prometheus
import Testing

/// The Workflows routes through `app.test(.router)` with the in-memory store: the refusals a
/// client meets before anything is written, and the live socket's path answering a request that
/// did not upgrade.
@Suite struct WorkflowRouteTests {
    struct NoWorkflowReadModels: WorkflowQueries {
        func workflows(owner: String?, page: Int, pageSize: Int) async throws -> Page<WorkflowSummary> {
            Page(items: [], page: page, pageSize: pageSize, totalCount: 0)
        }
        func workflow(_ id: UUID) async throws -> WorkflowView? { nil }
        func versions(of id: UUID) async throws -> [WorkflowVersionView] { [] }
        func waitForWorkflows(_ checkpoint: Checkpoint, timeout: Duration) async throws -> Bool { true }
    }

    static func controller(_ identity: TestIdentity) -> WorkflowsController {
        WorkflowsController(workflows: CommandHandler(store: identity.store), queries: NoWorkflowReadModels())
    }

    static func live(_ identity: TestIdentity) -> WorkflowLive {
        let middleware = identity.dependencies.middleware
        return WorkflowLive(
            workflows: CommandHandler(store: identity.store), hub: identity.hub, doorbell: nil, presence: nil,
            authenticate: { try await middleware.principal(token: $0) }, logger: Logger(label: "test"))
    }

    static func app(identity: TestIdentity) -> some ApplicationProtocol {
        buildApplication(
            server: ServerSettings(),
            dependencies: AppDependencies(
                healthChecks: [], registry: PrometheusCollectorRegistry(), identity: identity.dependencies,
                routes: [controller(identity).mount, live(identity).mount]
            ) { .init(ready: true) },
            logger: Logger(label: "test"))
    }

    func create(_ client: some TestClientProtocol, _ auth: HTTPFields) async throws -> String {
        try await client.execute(uri: "/api/v1/workflows", method: .post, headers: auth, body: AgentRouteTests.body(["name": "Flow"])) { response in
            #expect(response.status == .created)
            return try #require(AgentRouteTests.json(response.body)["id"] as? String)
        }
    }

    @Test func anEditWithoutABaseIsRefusedAndAMalformedOneNamesItsPath() async throws {
        let identity = try await TestIdentity()
        let auth = try await identity.bearer("alice@example.com")
        try await Self.app(identity: identity).test(.router) { client in
            let id = try await create(client, auth)
            let rename: [String: Any] = ["ops": [["op": "rename", "name": "x"]]]
            try await client.execute(uri: "/api/v1/workflows/\(id)", method: .patch, headers: auth, body: AgentRouteTests.body(rename)) { response in
                #expect(response.status == .preconditionRequired)
                #expect(AgentRouteTests.json(response.body)["code"] as? String == "workflow.base_required")
            }
            let bad: [String: Any] = ["base_version": 1, "ops": [["op": "move_node", "node": "n1"]]]
            try await client.execute(uri: "/api/v1/workflows/\(id)", method: .patch, headers: auth, body: AgentRouteTests.body(bad)) { response in
                #expect(response.status == .badRequest)
                #expect(response.headers[.contentType] == "application/problem+json")
            }
            let empty: [String: Any] = ["base_version": 1, "ops": []]
            try await client.execute(uri: "/api/v1/workflows/\(id)", method: .patch, headers: auth, body: AgentRouteTests.body(empty)) { response in
                #expect(response.status == .unprocessableContent)
            }
        }
    }

    @Test func theLivePathAnswersAPlainRequestWithAProblemAndOthersWith404() async throws {
        let identity = try await TestIdentity()
        let alice = try await identity.bearer("alice@example.com")
        let bob = try await identity.bearer("bob@example.com")
        try await Self.app(identity: identity).test(.router) { client in
            let id = try await create(client, alice)
            try await client.execute(uri: "/api/v1/workflows/\(id)/live", method: .get, headers: alice) { response in
                #expect(response.status == .upgradeRequired)
                #expect(AgentRouteTests.json(response.body)["code"] as? String == "workflow.websocket_required")
            }
            try await client.execute(uri: "/api/v1/workflows/\(id)/live", method: .get, headers: bob) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/api/v1/workflows/\(id)/live", method: .get) { #expect($0.status == .unauthorized) }
        }
    }
}
