import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import Prometheus
import ServiceLifecycle

/// Where and how the HTTP server listens.
public struct ServerSettings: Sendable {
    public var host: String
    public var port: Int

    public init(host: String = "127.0.0.1", port: Int = 8080) {
        self.host = host
        self.port = port
    }
}

/// A module's routes: the group they live under, below `/api/v1`, and how to add them.
public struct RouteMount: Sendable {
    public var path: String
    public var add: @Sendable (RouterGroup<ChronicleRequestContext>) -> Void

    public init(_ path: String, add: @escaping @Sendable (RouterGroup<ChronicleRequestContext>) -> Void) {
        self.path = path
        self.add = add
    }
}

/// What the routes need from the rest of the process. Tests build it with fakes or real adapters.
public struct AppDependencies: Sendable {
    public var healthChecks: [HealthCheck]
    public var readiness: @Sendable () async -> HealthController<ChronicleRequestContext>.Readiness
    public var registry: PrometheusCollectorRegistry
    /// Long-lived services that run beside the server (Postgres pool, listeners, projectors, ...).
    public var services: [any Service]
    /// Authentication, rate limits and CORS for everything under `/api/v1`.
    public var identity: Identity?
    /// Every module's routes under `/api/v1`; none serves only health, metrics and the document.
    public var routes: [RouteMount]
    /// WebSocket upgrades under `/api/v1`, tried before the HTTP routes for upgrade requests. A
    /// request they do not upgrade goes on to the HTTP routes, which answer it with a problem.
    public var webSocketRoutes: [RouteMount] = []
    /// Largest WebSocket frame a client may send (bytes).
    public var webSocketMaxFrame = 64 * 1024

    public struct Identity: Sendable {
        public var auth: AuthController
        public var middleware: AuthMiddleware
        public var rateLimits: RateLimitMiddleware?
        public var corsOrigins: [String]

        public init(auth: AuthController, middleware: AuthMiddleware, rateLimits: RateLimitMiddleware?, corsOrigins: [String] = []) {
            self.auth = auth
            self.middleware = middleware
            self.rateLimits = rateLimits
            self.corsOrigins = corsOrigins
        }
    }

    public init(
        healthChecks: [HealthCheck], registry: PrometheusCollectorRegistry, services: [any Service] = [], identity: Identity? = nil,
        routes: [RouteMount] = [], webSocketRoutes: [RouteMount] = [],
        readiness: @escaping @Sendable () async -> HealthController<ChronicleRequestContext>.Readiness
    ) {
        self.webSocketRoutes = webSocketRoutes
        self.healthChecks = healthChecks
        self.registry = registry
        self.services = services
        self.identity = identity
        self.routes = routes
        self.readiness = readiness
    }
}

public func buildRouter(_ dependencies: AppDependencies) -> Router<ChronicleRequestContext> {
    let router = Router(context: ChronicleRequestContext.self)
    router.add(middleware: RequestIDMiddleware())
    router.add(middleware: CORSMiddleware(origins: dependencies.identity?.corsOrigins ?? []))
    // Metrics outside the problem mapping, so they record the status the client gets (a domain
    // error is a 4xx there, not the 500 an unmapped error would count as).
    router.add(middleware: RequestMetricsMiddleware())
    router.add(middleware: ProblemMiddleware())
    HealthController(checks: dependencies.healthChecks, registry: dependencies.registry, readiness: dependencies.readiness)
        .addRoutes(to: router)
    OpenAPIController().addRoutes(to: router)
    // Everything under /api/v1 needs a token, but the token endpoint itself. Without an identity
    // (route tests only), the API routes are not served at all.
    guard let identity = dependencies.identity else { return router }
    identity.auth.addPublicRoutes(to: router.group("api/v1/auth"))
    var api = router.group("api/v1").add(middleware: identity.middleware)
    if let rateLimits = identity.rateLimits { api = api.add(middleware: rateLimits) }
    identity.auth.addProtectedRoutes(to: api.group("auth"))
    for mount in dependencies.routes { mount.add(api.group(RouterPath(mount.path))) }
    return router
}

/// The router that decides WebSocket upgrades: the same request id, and the token from the
/// `Authorization` header or from `Sec-WebSocket-Protocol` (`bearer.<token>`, as browsers cannot
/// set headers on a socket); an upgrade without either is let through to authenticate in its first
/// message. No token ever travels in the URL.
public func buildWebSocketRouter(_ dependencies: AppDependencies) -> Router<ChronicleRequestContext> {
    let router = Router(context: ChronicleRequestContext.self)
    router.add(middleware: RequestIDMiddleware())
    guard let identity = dependencies.identity, !dependencies.webSocketRoutes.isEmpty else { return router }
    let api = router.group("api/v1").add(middleware: WebSocketAuthMiddleware(auth: identity.middleware))
    for mount in dependencies.webSocketRoutes { mount.add(api.group(RouterPath(mount.path))) }
    return router
}

/// The application `chronicle serve` runs; tests call it too, with `app.test(.router)` or `.live`.
public func buildApplication(
    server: ServerSettings, dependencies: AppDependencies, logger: Logger
) -> some ApplicationProtocol {
    Application(
        router: buildRouter(dependencies),
        server: .http1WebSocketUpgrade(
            webSocketRouter: buildWebSocketRouter(dependencies), configuration: .init(ws: .init(maxFrameSize: dependencies.webSocketMaxFrame))),
        configuration: .init(address: .hostname(server.host, port: server.port), serverName: "chronicle"),
        services: dependencies.services,
        logger: logger)
}
