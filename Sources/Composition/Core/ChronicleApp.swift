import API
import Adapters
import Events
import Foundation
import Hummingbird
import Logging
import Metrics
import Projections
import Prometheus
import ServiceLifecycle
import Workers

/// Builds Chronicle from its modules. `chronicle serve`, the tests and the benchmarks all go
/// through here.
public enum ChronicleApp {
    /// The platform's own configuration section (the modules' are in their manifests).
    public static let settings: [SettingDescription] = [
        .init("chronicle.postgres.url", "(from env.sh)", "Postgres (--database-url)"),
        .init("chronicle.log_level", "info for serve, critical for other commands", "Log level (--log-level)"),
        .init("chronicle.migrations_dir", "eventstore/migrations, found from the working directory or the binary", "Migrations"),
        .init("chronicle.shutdown_grace_seconds", "30", "How long serve may take to stop after SIGTERM (1 to 3600)"),
        .init("chronicle.host", "127.0.0.1", "Address to listen on (--host)"),
        .init("chronicle.port", "8080", "Port to listen on (--port)"),
        .init("chronicle.redis.url", "redis://127.0.0.1:56379/0", "Redis"),
        .init("chronicle.amqp.url", "amqp://guest:guest@127.0.0.1:55672/%2f", "RabbitMQ (?heartbeat=S sets consumers' heartbeat)"),
        .init("chronicle.hub.buffer", "1024", "Events a push subscriber may hold unread before it is dropped (16 to 1000000)"),
        .init("chronicle.run_watchdog.grace_seconds", "60", "A started run silent for its time limit plus this is failed"),
        .init("chronicle.run_watchdog.pending_seconds", "300", "A run not started this long after its request is failed"),
    ]

    /// The platform for `postgres`, with Redis and RabbitMQ from the settings.
    public static func platform(
        postgres: ChronicleDatabase, settings: Settings, metrics: any MetricsFactory = NOOPMetricsHandler.instance, logger: Logger
    ) throws -> Platform {
        let redis = try RedisSettings(url: settings.text("chronicle.redis.url", default: "redis://127.0.0.1:56379/0"))
        let amqp = try AMQPSettings(url: settings.text("chronicle.amqp.url", default: "amqp://guest:guest@127.0.0.1:55672/%2f"))
        return Platform(
            database: postgres, redis: RedisClient(settings: redis, logger: logger), amqp: amqp, metrics: metrics,
            hubBuffer: try settings.integer("chronicle.hub.buffer", default: 1024, range: 16...1_000_000), logger: logger)
    }

    /// Every projection every module declares, bound to `platform`.
    public static func projectors(_ platform: Platform, modules: [any ChronicleModule] = Modules.all) -> [Projector] {
        modules.flatMap(\.projections).map(platform.projector)
    }

    /// The relay: integration events from the log to RabbitMQ, with publisher confirms.
    public static func relay(_ platform: Platform, modules: [any ChronicleModule] = Modules.all) -> ProjectorRunner<RelayStore> {
        let contracts = Modules.contracts(of: modules)
        let registry = Modules.registry(of: modules)
        let publisher = AMQPPublisher(
            settings: platform.amqp, topology: RelayStore.topology(namespace: platform.namespace, contracts: contracts), logger: platform.logger)
        return platform.runner(
            RelayStore(
                publisher: publisher, contracts: contracts, registry: registry, client: platform.database.client, namespace: platform.namespace,
                metrics: platform.metrics, logger: platform.logger),
            lagAlsoReportedAs: RelayStore.outboxDepthMetric)
    }

    /// Every module assembled, in order, for `roles`; then what the roles add across modules:
    /// the projectors, the relay, the run watchdog and the push hub.
    public static func assemble(
        platform: Platform, settings: Settings, roles: Set<Role>, modules: [any ChronicleModule] = Modules.all
    ) async throws -> Assembly {
        for module in modules { try module.check(settings) }
        var app = Assembly(platform: platform, settings: settings, roles: roles)
        for module in modules { try await module.assemble(into: &app) }
        if roles.contains(.projectors) {
            for projector in projectors(platform, modules: modules) { app.add(service: projector.runner()) }
        }
        if roles.contains(.relay) { app.add(service: relay(platform, modules: modules)) }
        if roles.contains(.workers) {
            let policy = StallPolicy(
                grace: .seconds(try settings.integer("chronicle.run_watchdog.grace_seconds", default: 60, range: 1...3600)),
                pendingGrace: .seconds(try settings.integer("chronicle.run_watchdog.pending_seconds", default: 300, range: 1...86_400)))
            app.add(service: RunWatchdog(runs: app.supervised, policy: policy, logger: platform.logger))
        }
        if roles.contains(.api) { app.add(service: platform.hub) }
        if roles.contains(.api) || roles.contains(.projectors) { app.add(service: platform.doorbell) }
        return app
    }

    /// The HTTP application of an assembly: core health checks, then the modules' routes.
    public static func dependencies(
        _ app: Assembly, registry: PrometheusCollectorRegistry, services: [any Service],
        readiness: @escaping @Sendable () async -> HealthController<ChronicleRequestContext>.Readiness
    ) -> AppDependencies {
        let platform = app.platform
        let redis = platform.redis.settings
        let amqp = platform.amqp
        return AppDependencies(
            healthChecks: [
                HealthCheck(name: "postgres", critical: true) { try await platform.database.ping() },
                HealthCheck(name: "redis", critical: false) { try await RedisProbe.ping(redis) },
                HealthCheck(name: "rabbitmq", critical: false) { try await AMQPProbe.check(amqp) },
            ] + app.healthChecks,
            registry: registry, services: services, identity: app.identity, routes: app.routes, webSocketRoutes: app.webSocketRoutes,
            readiness: readiness)
    }
}
