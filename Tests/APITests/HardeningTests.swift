import API
import Commands
import Events
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Prometheus
import Synchronization
import Testing
import Workers

/// Regressions of the probe of issue 17, each named after what the probe found.
@Suite struct HardeningTests {
    /// Allows everything and records the keys each request counted against.
    final class RecordingLimiter: RateLimiter {
        let keys = Mutex<[[String]]>([])
        func check(_ limits: [RateLimit]) async throws -> RateDecision {
            keys.withLock { $0.append(limits.map(\.key)) }
            return RateDecision(allowed: true, limit: 100, remaining: 99, resetSeconds: 60, retryAfterSeconds: 0)
        }
    }

    static func app(identity: TestIdentity) -> some ApplicationProtocol {
        buildApplication(
            server: ServerSettings(),
            dependencies: AppDependencies(
                healthChecks: [], registry: PrometheusCollectorRegistry(),
                identity: identity.dependencies,
                routes: [
                    AgentsController(store: identity.store, queries: AgentRouteTests.NoReadModels(), hub: identity.hub).mount,
                    SandboxController(store: identity.store, queries: AgentRouteTests.NoSandboxReadModel(), runner: nil, host: AgentRouteTests.TestHost()).mount,
                ]
            ) { .init(ready: true) },
            logger: Logger(label: "test"))
    }

    static func json(_ buffer: ByteBuffer) -> [String: Any] { AgentRouteTests.json(buffer) }

    @Test func theExecutionRateLimitIsNotBypassedByATrailingOrDoubledSlash() async throws {
        let limiter = RecordingLimiter()
        let identity = try await TestIdentity(limiter: limiter)
        let auth = try await identity.bearer("alice@example.com")
        let user = UserDecider.userID(email: "alice@example.com").uuidString.lowercased()
        let agent = UUID().uuidString.lowercased()
        let variants: [(String, String)] = [
            ("/api/v1/sandbox/execute", "sandbox"), ("/api/v1/sandbox/execute/", "sandbox"), ("//api/v1/sandbox/execute", "sandbox"),
            ("/api/v1//sandbox//execute", "sandbox"), ("/api/v1/agents/\(agent)/execute", "agents"),
            ("/api/v1/agents/\(agent)/execute/", "agents"), ("//api/v1/agents/\(agent)//execute", "agents"),
        ]
        try await Self.app(identity: identity).test(.router) { client in
            for (uri, bucket) in variants {
                limiter.keys.withLock { $0 = [] }
                try await client.execute(uri: uri, method: .post, headers: auth, body: AgentRouteTests.body(["code": "print(1)", "input": "hi"])) {
                    #expect($0.status != .notFound || uri.contains("agents"), "\(uri) was not routed")
                }
                let counted = limiter.keys.withLock { $0 }
                #expect(counted == [["user:\(user)", "execute:\(bucket):\(user)"]], "\(uri) counted as \(counted)")
            }
            // A read of the same prefix is not an execution.
            limiter.keys.withLock { $0 = [] }
            try await client.execute(uri: "/api/v1/sandbox/executions/\(agent)/", method: .get, headers: auth) { _ in }
            #expect(limiter.keys.withLock { $0 } == [["user:\(user)"]])
        }
    }

    /// The limited routes are named by their templates: a renamed route must not silently lose
    /// its limit.
    @Test func everyExecutionRouteHasALimitOfItsOwn() async throws {
        let identity = try await TestIdentity()
        let router = buildRouter(AppDependencies(
            healthChecks: [], registry: PrometheusCollectorRegistry(),
            identity: identity.dependencies,
            routes: [
                AgentsController(store: identity.store, queries: AgentRouteTests.NoReadModels(), hub: identity.hub).mount,
                SandboxController(store: identity.store, queries: AgentRouteTests.NoSandboxReadModel(), runner: nil, host: AgentRouteTests.TestHost()).mount,
                AuditRunsController(store: identity.store, replayer: AgentRunReplay(logger: Logger(label: "test")), personas: nil).mount,
            ]
        ) { .init(ready: true) })
        // Runs started (execute, fork) or run again (replay).
        let running = ["/execute", "/fork", "/replay"]
        let executeRoutes = Set(router.routes.filter { route in
            route.method == .post && running.contains { route.path.description.hasSuffix($0) }
        }.map { route in
            "/" + route.path.description.split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }.joined(separator: "/")
        })
        #expect(executeRoutes == Set(RateLimitMiddleware.expensiveRoutes.keys))
    }

    /// `POST /agents`, then the new agent's id.
    static func createAgent(_ client: some TestClientProtocol, _ auth: HTTPFields) async throws -> String {
        try await client.execute(uri: "/api/v1/agents", method: .post, headers: auth, body: AgentRouteTests.body(["name": "A"])) { response in
            #expect(response.status == .created)
            return Self.json(response.body)["id"] as? String ?? ""
        }
    }

    static func nested(depth: Int) -> String {
        String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
    }

    @Test(arguments: [33, 500, 100_000])
    func deeplyNestedJSONIsRefusedBeforeItIsDecoded(depth: Int) async throws {
        let identity = try await TestIdentity()
        let auth = try await identity.bearer("alice@example.com")
        try await Self.app(identity: identity).test(.router) { client in
            let agent = try await Self.createAgent(client, auth)
            let body = "{\"input\": \"hi\", \"parameters\": {\"a\": \(Self.nested(depth: depth - 1))}}"
            try await client.execute(uri: "/api/v1/agents/\(agent)/execute", method: .post, headers: auth, body: ByteBuffer(string: body)) { response in
                #expect(response.status == .badRequest)
                #expect(response.headers[.contentType] == "application/problem+json")
                #expect(Self.json(response.body)["code"] as? String == "request.too_deep")
            }
            // Brackets inside strings are text, not depth.
            let quoted = "{\"input\": \"\(Self.nested(depth: depth))\\\"[\", \"parameters\": {\"a\": [[1]]}}"
            try await client.execute(uri: "/api/v1/agents/\(agent)/execute", method: .post, headers: auth, body: ByteBuffer(string: quoted)) { response in
                #expect(response.status != .badRequest, "\(String(buffer: response.body))")
            }
        }
    }

    @Test func nestingUpToTheLimitIsAccepted() async throws {
        let identity = try await TestIdentity()
        let auth = try await identity.bearer("alice@example.com")
        try await Self.app(identity: identity).test(.router) { client in
            let agent = try await Self.createAgent(client, auth)
            // The body is one level, parameters a second: 30 more arrays make 32.
            let body = "{\"input\": \"hi\", \"parameters\": {\"a\": \(Self.nested(depth: 30))}}"
            try await client.execute(uri: "/api/v1/agents/\(agent)/execute", method: .post, headers: auth, body: ByteBuffer(string: body)) { response in
                #expect(response.status == .accepted, "\(String(buffer: response.body))")
            }
        }
    }

    @Test func bodiesOverOneMebibyteAre413NotA500EvenAtTheTokenEndpoint() async throws {
        let identity = try await TestIdentity()
        let auth = try await identity.bearer("alice@example.com")
        let large = "{\"name\": \"" + String(repeating: "a", count: (1 << 20) + 10) + "\"}"
        let form = "username=a&password=" + String(repeating: "b", count: (1 << 20) + 10)
        let json: HTTPFields = [.contentType: "application/json"]
        let urlEncoded: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
        try await Self.app(identity: identity).test(.router) { client in
            for (uri, headers, body) in [
                ("/api/v1/auth/token", json, large), ("/api/v1/auth/token", urlEncoded, form),
                ("/api/v1/agents", auth, large), ("/api/v1/sandbox/execute", auth, large),
            ] {
                try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: body)) { response in
                    #expect(response.status == .contentTooLarge, "\(uri)")
                    #expect(response.headers[.contentType] == "application/problem+json")
                    #expect(Self.json(response.body)["code"] as? String == "request.too_large")
                }
            }
        }
    }

    @Test func lengthLimitsCountBytesAsWellAsCharacters() async throws {
        let identity = try await TestIdentity()
        let auth = try await identity.bearer("alice@example.com")
        // One letter and 300,000 combining marks: one character, 600 KB.
        let stacked = "a" + String(repeating: "\u{0301}", count: 300_000)
        #expect(stacked.count == 1)
        try await Self.app(identity: identity).test(.router) { client in
            try await client.execute(uri: "/api/v1/agents", method: .post, headers: auth, body: AgentRouteTests.body(["name": stacked])) { response in
                #expect(response.status == .unprocessableContent)
                #expect(Self.json(response.body)["code"] as? String == "agent.name_length")
                #expect((Self.json(response.body)["detail"] as? String)?.contains("bytes") == true)
            }
            let agent = try await Self.createAgent(client, auth)
            try await client.execute(uri: "/api/v1/agents/\(agent)", method: .patch, headers: auth, body: AgentRouteTests.body(["name": stacked])) {
                #expect($0.status == .unprocessableContent)
            }
            let key: HTTPFields = [HTTPField.Name("Idempotency-Key")!: "k" + String(repeating: "\u{0301}", count: 1_000)]
            try await client.execute(uri: "/api/v1/agents", method: .post, headers: auth + key, body: AgentRouteTests.body(["name": "B"])) {
                #expect($0.status == .badRequest)
            }
        }
    }

    @Test func problemsSpeakJSONNotSwiftTypes() async throws {
        let identity = try await TestIdentity()
        let auth = try await identity.bearer("alice@example.com")
        try await Self.app(identity: identity).test(.router) { client in
            let agent = try await Self.createAgent(client, auth)
            let cases: [(String, String)] = [
                ("{\"input\": \"hi\", \"parameters\": \"x\"}", "`parameters` must be an object"),
                ("{\"input\": 3}", "`input` must be a string"),
                ("{\"parameters\": {}}", "`input` is required"),
                ("{\"input\": \"hi\", \"timeout_seconds\": \"soon\"}", "`timeout_seconds` must be a number"),
                ("{\"input\": ", "the request body is not valid JSON"),
            ]
            for (body, said) in cases {
                try await client.execute(uri: "/api/v1/agents/\(agent)/execute", method: .post, headers: auth, body: ByteBuffer(string: body)) { response in
                    #expect(response.status == .badRequest)
                    let detail = Self.json(response.body)["detail"] as? String ?? ""
                    #expect(detail == said)
                    for swift in ["Dictionary", "Swift", "Optional", "String.Type", "Coding key"] { #expect(!detail.contains(swift), "\(detail)") }
                }
            }
            try await client.execute(uri: "/api/v1/agents/\(agent)", method: .patch, headers: auth, body: ByteBuffer(string: "{}")) { response in
                #expect(response.status == .unprocessableContent)
                #expect((Self.json(response.body)["detail"] as? String)?.hasPrefix("the body changes nothing") == true)
            }
        }
    }

    /// Sends raw bytes to 127.0.0.1:`port` and returns what comes back until the server closes
    /// the connection or 5 s pass. On a thread of its own: the calls block.
    static func raw(_ request: String, port: Int) async -> String {
        await withCheckedContinuation { continuation in
            Thread {
                var answer = [UInt8]()
                defer { continuation.resume(returning: String(decoding: answer, as: UTF8.self)) }
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                guard fd >= 0 else { return }
                defer { close(fd) }
                var timeout = timeval(tv_sec: 5, tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_port = in_port_t(UInt16(port).bigEndian)
                address.sin_addr.s_addr = inet_addr("127.0.0.1")
                let connected = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
                guard connected == 0 else { return }
                let bytes = Array(request.utf8)
                _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
                var buffer = [UInt8](repeating: 0, count: 65536)
                while true {
                    let n = recv(fd, &buffer, buffer.count, 0)
                    if n <= 0 { break }
                    answer += buffer[0..<n]
                }
            }.start()
        }
    }

    @Test func aMalformedChunkedBodyIsA400ProblemNotA500() async throws {
        let identity = try await TestIdentity()
        let app = buildApplication(
            server: ServerSettings(host: "127.0.0.1", port: 0),
            dependencies: AppDependencies(healthChecks: [], registry: PrometheusCollectorRegistry(), identity: identity.dependencies) { .init(ready: true) },
            logger: Logger(label: "test"))
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let answer = await Self.raw(
                "POST /api/v1/auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "5\r\n{\"use\r\nZZZ\r\nnot a chunk\r\n\r\n", port: port)
            #expect(answer.hasPrefix("HTTP/1.1 400"), "\(answer.prefix(300))")
            #expect(answer.contains("application/problem+json"), "\(answer.prefix(300))")
            #expect(answer.contains("request.malformed_http"), "\(answer.prefix(400))")
            #expect(!answer.contains(" 500 "))
        }
    }
}
