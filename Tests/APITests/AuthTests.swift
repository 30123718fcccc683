@testable import API
import Adapters
import Commands
import Events
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import JWTKit
import Logging
import Prometheus
import Projections
import Workers
import Synchronization
import Testing

/// Authentication, authorisation, rate limits, CORS and request ids through `app.test(.router)`.
@Suite struct AuthTests {
    static func app(_ identity: TestIdentity) -> some ApplicationProtocol {
        AgentRouteTests.app(identity: identity)
    }

    static func json(_ buffer: ByteBuffer) -> [String: Any] { AgentRouteTests.json(buffer) }

    static func expect401(_ app: some ApplicationProtocol, headers: HTTPFields, code: String) async throws {
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/v1/agents", method: .get, headers: headers) { response in
                #expect(response.status == .unauthorized)
                #expect(response.headers[.contentType] == "application/problem+json")
                #expect(response.headers[.wwwAuthenticate] == "Bearer")
                #expect(Self.json(response.body)["code"] as? String == code)
            }
        }
    }

    @Test func aMissingTokenIs401() async throws {
        let identity = try await TestIdentity()
        try await Self.expect401(Self.app(identity), headers: [:], code: "auth.token_missing")
        try await Self.expect401(Self.app(identity), headers: [.authorization: "Basic YTpi"], code: "auth.token_missing")
    }

    @Test func aForgedSignatureIs401() async throws {
        let identity = try await TestIdentity()
        let forger = try await TokenService(settings: .init(secret: Array("another-secret-of-at-least-thirty-two-b".utf8)))
        let id = UserDecider.userID(email: "alice@example.com").uuidString.lowercased()
        let forged = try await forger.issue(userID: id, tenant: "t1", roles: ["admin"], tier: "enterprise")
        try await Self.expect401(Self.app(identity), headers: [.authorization: "Bearer \(forged)"], code: "auth.token_invalid")
        // A valid token with its payload swapped for another user's.
        let real = try await identity.token("alice@example.com").split(separator: ".")
        let other = try await identity.token("admin@example.com").split(separator: ".")
        try await Self.expect401(Self.app(identity), headers: [.authorization: "Bearer \(real[0]).\(other[1]).\(real[2])"], code: "auth.token_invalid")
    }

    @Test func anExpiredTokenIs401() async throws {
        let identity = try await TestIdentity()
        let id = UserDecider.userID(email: "alice@example.com").uuidString.lowercased()
        let old = try await identity.tokens.issue(userID: id, tenant: "t1", roles: ["member"], tier: "free", now: Date().addingTimeInterval(-1000))
        try await Self.expect401(Self.app(identity), headers: [.authorization: "Bearer \(old)"], code: "auth.token_expired")
    }

    @Test func algNoneIs401() async throws {
        let identity = try await TestIdentity()
        func b64(_ json: String) -> String {
            Data(json.utf8).base64EncodedString().replacingOccurrences(of: "=", with: "").replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_")
        }
        let id = UserDecider.userID(email: "alice@example.com").uuidString.lowercased()
        let payload = b64(#"{"iss":"chronicle","sub":"\#(id)","exp":9999999999,"aud":["chronicle-api"],"roles":["admin"]}"#)
        for header in [#"{"alg":"none","typ":"JWT"}"#, #"{"alg":"None"}"#] {
            try await Self.expect401(Self.app(identity), headers: [.authorization: "Bearer \(b64(header)).\(payload)."], code: "auth.token_algorithm")
        }
    }

    @Test func aTokenFromAnUnknownIssuerIs401() async throws {
        let identity = try await TestIdentity()
        let stranger = try await TokenService(settings: .init(issuer: "https://evil.example", secret: TestIdentity.secret))
        let token = try await stranger.issue(userID: UserDecider.userID(email: "alice@example.com").uuidString.lowercased(), tenant: "t1", roles: [], tier: "free")
        try await Self.expect401(Self.app(identity), headers: [.authorization: "Bearer \(token)"], code: "auth.token_issuer")
    }

    @Test func aGarbageTokenIs401() async throws {
        let identity = try await TestIdentity()
        try await Self.expect401(Self.app(identity), headers: [.authorization: "Bearer not.a.jwt"], code: "auth.token_malformed")
    }

    @Test func anOutsideIssuersES256TokenIsAcceptedWithItsClaims() async throws {
        let key = ES256PrivateKey()
        let tokens = try await TokenService(settings: .init(
            secret: TestIdentity.secret, external: .init(issuer: "https://idp.example", pem: try key.publicKey.pemRepresentation, audience: "chronicle")))
        let signer = JWTKeyCollection()
        await signer.add(ecdsa: key)
        struct Claims: JWTPayload {
            var iss: IssuerClaim, sub: SubjectClaim, exp: ExpirationClaim, aud: AudienceClaim, roles: [String], tenant: String
            func verify(using algorithm: some JWTAlgorithm) async throws {}
        }
        let token = try await signer.sign(Claims(
            iss: "https://idp.example", sub: "ext-42", exp: .init(value: Date().addingTimeInterval(60)), aud: "chronicle", roles: ["admin", "wizard"],
            tenant: "acme"))
        let verified = try await tokens.verify(token)
        #expect(verified.subject == "ext-42" && !verified.isLocal && verified.tenant == "acme" && verified.roles == ["admin", "wizard"])
        // The outside issuer's tokens must be signed by its key: an HS256 token naming it is refused.
        let impostor = try await TokenService(settings: .init(issuer: "https://idp.example", secret: TestIdentity.secret))
        let forged = try await impostor.issue(userID: "ext-42", tenant: "acme", roles: ["admin"], tier: "free")
        await #expect(throws: TokenError.unsupportedAlgorithm("HS256")) { try await tokens.verify(forged) }
    }

    /// A token verified once is answered from the cache until it expires, then refused as expired;
    /// a token that differs by one character of its signature is never a hit.
    @Test func aVerifiedTokenIsCachedUntilItExpiresAndNoLonger() async throws {
        let tokens = try await TokenService(settings: .init(secret: TestIdentity.secret, lifetime: .seconds(2)))
        let token = try await tokens.issue(userID: "u-1", tenant: "t", roles: ["user"], tier: "free")
        let first = try await tokens.verify(token)
        #expect(tokens.verified.count == 1)
        #expect(try await tokens.verify(token) == first)
        var tampered = Array(token)
        tampered[tampered.count - 2] = tampered[tampered.count - 2] == "A" ? "B" : "A"
        await #expect(throws: TokenError.invalidSignature) { try await tokens.verify(String(tampered)) }
        #expect(tokens.verified.count == 1)
        try await Task.sleep(for: .milliseconds(2_100))
        await #expect(throws: TokenError.expired) { try await tokens.verify(token) }
        #expect(tokens.verified.count == 0)
    }

    @Test func theTokenEndpointIssuesTokensForJSONAndFormGrants() async throws {
        let identity = try await TestIdentity()
        try await Self.app(identity).test(.router) { client in
            let json = AgentRouteTests.body(["grant_type": "password", "username": "Alice@Example.com", "password": TestIdentity.password])
            let token = try await client.execute(uri: "/api/v1/auth/token", method: .post, body: json) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.cacheControl] == "no-store")
                let body = Self.json(response.body)
                #expect(body["token_type"] as? String == "Bearer")
                #expect(body["expires_in"] as? Int == 900)
                return body["access_token"] as? String ?? ""
            }
            try await client.execute(uri: "/api/v1/auth/me", method: .get, headers: [.authorization: "Bearer \(token)"]) { response in
                #expect(response.status == .ok)
                #expect(Self.json(response.body)["roles"] as? [String] == ["member"])
            }
            // HTTP's optional whitespace around the token (spaces and tabs) is not part of it.
            try await client.execute(uri: "/api/v1/auth/me", method: .get, headers: [.authorization: "Bearer \t \(token) \t"]) { response in
                #expect(response.status == .ok)
            }
            let form = ByteBuffer(string: "grant_type=password&username=alice%40example.com&password=correct+horse+battery+staple")
            try await client.execute(
                uri: "/api/v1/auth/token", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"], body: form
            ) { #expect($0.status == .ok) }
        }
    }

    @Test(arguments: [
        ("alice@example.com", "wrong password!", 401, "auth.invalid_credentials"),
        ("nobody@example.com", TestIdentity.password, 401, "auth.invalid_credentials"),
    ])
    func theTokenEndpointRefusesBadCredentialsAlike(_ user: String, _ password: String, _ status: Int, _ code: String) async throws {
        let identity = try await TestIdentity()
        try await Self.app(identity).test(.router) { client in
            try await client.execute(
                uri: "/api/v1/auth/token", method: .post, body: AgentRouteTests.body(["username": user, "password": password])
            ) { response in
                #expect(response.status.code == status)
                #expect(Self.json(response.body)["code"] as? String == code)
            }
        }
    }

    @Test func aDisabledUsersTokenStopsWorking() async throws {
        let identity = try await TestIdentity(directoryTTL: .milliseconds(1))
        let auth = try await identity.bearer("alice@example.com")
        try await Self.app(identity).test(.router) { client in
            try await client.execute(uri: "/api/v1/auth/me", method: .get, headers: auth) { #expect($0.status == .ok) }
            let id = UserDecider.userID(email: "alice@example.com")
            _ = try await CommandHandler<UserDecider>(store: identity.store).handle(
                .disable(userID: id, now: Date()), on: UserDecider.streamID(id), context: CommandContext())
            try await Task.sleep(for: .milliseconds(5))
            try await client.execute(uri: "/api/v1/auth/me", method: .get, headers: auth) { response in
                #expect(response.status == .unauthorized)
                #expect(Self.json(response.body)["code"] as? String == "auth.user_disabled")
            }
            try await client.execute(
                uri: "/api/v1/auth/token", method: .post,
                body: AgentRouteTests.body(["username": "alice@example.com", "password": TestIdentity.password])
            ) { #expect($0.status == .unauthorized) }
        }
    }

    /// Every agent route: another member's agent is 404 (never 403); an admin may; a viewer reads only.
    @Test func ownersAreIsolatedOnEveryAgentRoute() async throws {
        let identity = try await TestIdentity()
        let alice = try await identity.bearer("alice@example.com")
        let bob = try await identity.bearer("bob@example.com")
        let admin = try await identity.bearer("admin@example.com")
        let viewer = try await identity.bearer("vera@example.com")
        try await Self.app(identity).test(.router) { client in
            let agent = try await client.execute(uri: "/api/v1/agents", method: .post, headers: alice, body: AgentRouteTests.body(["name": "A"])) {
                Self.json($0.body)["id"] as? String ?? ""
            }
            let execution = try await client.execute(
                uri: "/api/v1/agents/\(agent)/execute", method: .post, headers: alice, body: AgentRouteTests.body(["input": "hi"])
            ) { Self.json($0.body)["execution_id"] as? String ?? "" }
            let routes: [(HTTPRequest.Method, String, ByteBuffer?)] = [
                (.get, "/api/v1/agents/\(agent)", nil), (.patch, "/api/v1/agents/\(agent)", AgentRouteTests.body(["name": "B"])),
                (.get, "/api/v1/agents/\(agent)/usage", nil),
                (.post, "/api/v1/agents/\(agent)/execute", AgentRouteTests.body(["input": "x"])),
                (.get, "/api/v1/agents/\(agent)/executions", nil), (.get, "/api/v1/agents/\(agent)/executions/\(execution)", nil),
                (.get, "/api/v1/agents/\(agent)/executions/\(execution)/stream", nil),
                (.post, "/api/v1/agents/\(agent)/executions/\(execution)/cancel", nil), (.delete, "/api/v1/agents/\(agent)", nil),
            ]
            for (method, uri, body) in routes {
                try await client.execute(uri: uri, method: method, headers: bob, body: body) { response in
                    #expect(response.status == .notFound, "\(method) \(uri) as another member answered \(response.status)")
                }
            }
            // A viewer may not change anything, even what it could see.
            try await client.execute(uri: "/api/v1/agents", method: .post, headers: viewer, body: AgentRouteTests.body(["name": "V"])) { response in
                #expect(response.status == .forbidden)
            }
            // The admin may change and cancel another's.
            try await client.execute(uri: "/api/v1/agents/\(agent)", method: .patch, headers: admin, body: AgentRouteTests.body(["name": "By admin"])) {
                #expect($0.status == .ok)
            }
            try await client.execute(uri: "/api/v1/agents/\(agent)/executions/\(execution)/cancel", method: .post, headers: admin) {
                #expect($0.status == .accepted)
            }
        }
    }

    /// A limiter that refuses everything, or that cannot be reached.
    struct FixedLimiter: RateLimiter {
        let decision: RateDecision?
        func check(_ limits: [RateLimit]) async throws -> RateDecision {
            guard let decision else { throw CancellationError() }
            return decision
        }
    }

    @Test func overTheLimitIs429WithRetryAfterAndRateLimitHeaders() async throws {
        let refuse = RateDecision(allowed: false, limit: 10, remaining: 0, resetSeconds: 42, retryAfterSeconds: 17)
        let identity = try await TestIdentity(limiter: FixedLimiter(decision: refuse))
        let auth = try await identity.bearer("alice@example.com")
        try await Self.app(identity).test(.router) { client in
            try await client.execute(uri: "/api/v1/agents", method: .get, headers: auth) { response in
                #expect(response.status == .tooManyRequests)
                #expect(response.headers[.retryAfter] == "17")
                #expect(response.headers[HTTPField.Name("RateLimit-Limit")!] == "10")
                #expect(response.headers[HTTPField.Name("RateLimit-Remaining")!] == "0")
                #expect(response.headers[HTTPField.Name("RateLimit-Reset")!] == "42")
                #expect(Self.json(response.body)["code"] as? String == "rate_limit.exceeded")
            }
        }
    }

    @Test func withoutTheLimiterReadsPassAndExecutionsAreRefused() async throws {
        let identity = try await TestIdentity(limiter: FixedLimiter(decision: nil))
        let auth = try await identity.bearer("alice@example.com")
        try await Self.app(identity).test(.router) { client in
            let agent = try await client.execute(uri: "/api/v1/agents", method: .post, headers: auth, body: AgentRouteTests.body(["name": "A"])) { response in
                #expect(response.status == .created)
                return Self.json(response.body)["id"] as? String ?? ""
            }
            try await client.execute(uri: "/api/v1/agents", method: .get, headers: auth) { #expect($0.status == .ok) }
            try await client.execute(
                uri: "/api/v1/agents/\(agent)/execute", method: .post, headers: auth, body: AgentRouteTests.body(["input": "hi"])
            ) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(response.headers[.retryAfter] == "5")
                #expect(Self.json(response.body)["code"] as? String == "rate_limit.unavailable")
            }
        }
    }

    @Test func corsAnswersPreflightsForConfiguredOriginsOnly() async throws {
        let identity = try await TestIdentity()
        try await Self.app(identity).test(.router) { client in
            let preflight: HTTPFields = [.origin: "https://app.example.com", .accessControlRequestMethod: "POST"]
            try await client.execute(uri: "/api/v1/agents", method: .options, headers: preflight) { response in
                #expect(response.status == .noContent)
                #expect(response.headers[.accessControlAllowOrigin] == "https://app.example.com")
                #expect(response.headers[.accessControlAllowHeaders]?.contains("Authorization") == true)
            }
            try await client.execute(
                uri: "/api/v1/agents", method: .options, headers: [.origin: "https://evil.example", .accessControlRequestMethod: "POST"]
            ) { response in
                #expect(response.headers[.accessControlAllowOrigin] == nil)
            }
            // Error responses carry CORS headers too, so a browser app can read the problem.
            try await client.execute(uri: "/api/v1/agents", method: .get, headers: [.origin: "https://app.example.com"]) { response in
                #expect(response.status == .unauthorized)
                #expect(response.headers[.accessControlAllowOrigin] == "https://app.example.com")
                #expect(response.headers[.accessControlExposeHeaders]?.contains("X-Request-ID") == true)
            }
        }
    }

    @Test func theRequestIDIsReturnedAndBecomesTheEventsCorrelationID() async throws {
        let identity = try await TestIdentity()
        let auth = try await identity.bearer("alice@example.com")
        try await Self.app(identity).test(.router) { client in
            let id = try await client.execute(
                uri: "/api/v1/agents", method: .post, headers: auth + [HTTPField.Name("X-Request-ID")!: "req-123"], body: AgentRouteTests.body(["name": "A"])
            ) { response in
                #expect(response.headers[HTTPField.Name("X-Request-ID")!] == "req-123")
                return Self.json(response.body)["id"] as? String ?? ""
            }
            let events = try await identity.store.readStream("agent-\(id)", from: 1, direction: .forward, limit: 1)
            #expect(events.first?.metadata.correlationID == "req-123")
            #expect(events.first?.metadata.userID == UserDecider.userID(email: "alice@example.com").uuidString.lowercased())
            #expect(events.first?.metadata.tenantID == "t1")
            try await client.execute(uri: "/live", method: .get) { response in
                #expect(UUID(uuidString: response.headers[HTTPField.Name("X-Request-ID")!] ?? "") != nil)
            }
        }
    }
}

@Suite struct ParkedRouteTests {
    /// A parking lot with one parked event.
    actor Lot: ParkedEventStore {
        var requests: [(ParkedEvent.Action, String, UUID)] = []
        let event = ParkedEvent(
            projector: "agents_by_owner", eventID: UUID(), streamID: "agent-x", streamVersion: 3, checkpoint: Checkpoint(transactionID: 7, position: 9),
            error: "boom", attempts: 3, heldBehind: nil, status: "parked", parkedAt: Date())
        func parked(projector: String?) async throws -> [ParkedEvent] { projector == nil || projector == event.projector ? [event] : [] }
        func request(_ action: ParkedEvent.Action, projector: String, eventID: UUID) async throws -> Bool {
            guard projector == event.projector, eventID == event.eventID else { return false }
            requests.append((action, projector, eventID))
            return true
        }
        func heldStreams(projector: String) async throws -> [String: UUID] { [:] }
        func requested(projector: String) async throws -> [ParkedEvent] { [] }
        func heldBehind(projector: String, eventID: UUID) async throws -> [ParkedEvent] { [] }
        func repark(projector: String, eventID: UUID, error: String, previous: UUID) async throws {}
        func forget(projector: String, eventIDs: [UUID]) async throws {}
    }

    @Test func adminsListRetryAndSkipParkedEventsAndOthersAreRefused() async throws {
        let identity = try await TestIdentity()
        let lot = Lot()
        let app = buildApplication(
            server: ServerSettings(),
            dependencies: AppDependencies(
                healthChecks: [], registry: PrometheusCollectorRegistry(), identity: identity.dependencies, routes: [ParkedController(parking: lot).mount]
            ) { .init(ready: true) },
            logger: Logger(label: "test"))
        let admin = try await identity.bearer("admin@example.com")
        let member = try await identity.bearer("alice@example.com")
        let id = lot.event.eventID.uuidString.lowercased()
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/v1/admin/parked", method: .get, headers: admin) { response in
                #expect(response.status == .ok)
                let items = AgentRouteTests.json(response.body)["items"] as? [[String: Any]]
                #expect(items?.first?["event_id"] as? String == id)
                #expect(items?.first?["error"] as? String == "boom")
                #expect(items?.first?["position"] as? String == "7.9")
            }
            try await client.execute(uri: "/api/v1/admin/parked", method: .get, headers: member) { #expect($0.status == .forbidden) }
            // Found by schemathesis: a NUL in the name reached Postgres and came back 500.
            try await client.execute(uri: "/api/v1/admin/parked?projector=%C3%B0%00", method: .get, headers: admin) { #expect($0.status == .badRequest) }
            try await client.execute(uri: "/api/v1/admin/parked/agents_by_owner/\(id)/retry", method: .post, headers: admin) {
                #expect($0.status == .accepted)
            }
            try await client.execute(uri: "/api/v1/admin/parked/agents_by_owner/\(id)/skip", method: .post, headers: member) {
                #expect($0.status == .forbidden)
            }
            try await client.execute(uri: "/api/v1/admin/parked/agents_by_owner/\(UUID())/skip", method: .post, headers: admin) {
                #expect($0.status == .notFound)
            }
        }
        let requests = await lot.requests
        #expect(requests.count == 1 && requests.first?.0 == .retry)
    }
}
