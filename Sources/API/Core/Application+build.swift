import Foundation
import Hummingbird
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

/// What the routes need from the rest of the process. Tests build it with fakes or real adapters.
public struct AppDependencies: Sendable {
    public var healthChecks: [HealthCheck]
    public var readiness: @Sendable () async -> HealthController<BasicRequestContext>.Readiness
    public var registry: PrometheusCollectorRegistry
    /// Long-lived services that run beside the server (Postgres pool, listeners, projectors, ...).
    public var services: [any Service]

    public init(
        healthChecks: [HealthCheck], registry: PrometheusCollectorRegistry, services: [any Service] = [],
        readiness: @escaping @Sendable () async -> HealthController<BasicRequestContext>.Readiness
    ) {
        self.healthChecks = healthChecks
        self.registry = registry
        self.services = services
        self.readiness = readiness
    }
}

public func buildRouter(_ dependencies: AppDependencies) -> Router<BasicRequestContext> {
    let router = Router(context: BasicRequestContext.self)
    router.add(middleware: ProblemMiddleware())
    router.add(middleware: MetricsMiddleware())
    HealthController(checks: dependencies.healthChecks, registry: dependencies.registry, readiness: dependencies.readiness)
        .addRoutes(to: router)
    OpenAPIController().addRoutes(to: router)
    return router
}

/// The application `chronicle serve` runs; tests call it too, with `app.test(.router)` or `.live`.
public func buildApplication(
    server: ServerSettings, dependencies: AppDependencies, logger: Logger
) -> some ApplicationProtocol {
    Application(
        router: buildRouter(dependencies),
        configuration: .init(address: .hostname(server.host, port: server.port), serverName: "chronicle"),
        services: dependencies.services,
        logger: logger)
}
