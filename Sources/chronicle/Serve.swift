import API
import Adapters
import ArgumentParser
import Foundation
import Logging
import Projections
import Metrics
import Prometheus
import ServiceLifecycle

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the API, the projectors, the relay and the workers (or some of them). Stops gracefully on SIGTERM, within $CHRONICLE_SHUTDOWN_GRACE_SECONDS (30).")

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "Address to listen on (default: $CHRONICLE_HOST or 127.0.0.1)")
    var host: String?

    @Option(help: "Port to listen on (default: $CHRONICLE_PORT or 8080)")
    var port: Int?

    @Option(name: .customLong("migrations-dir"), help: "Folder of migrations, to check the schema is current")
    var migrationsDir: String?

    @Option(help: "Comma-separated roles this process runs: api, projectors, relay, workers (default: all). Run several processes with any roles against the same servers: leases share the projectors and the relay, and workers compete for work.")
    var roles: String = "api,projectors,relay,workers"

    enum Role: String, CaseIterable { case api, projectors, relay, workers }

    func chosenRoles() throws -> Set<Role> {
        let names = roles.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let chosen = try names.map { name -> Role in
            guard let role = Role(rawValue: name) else {
                throw ValidationError("unknown role '\(name)'; roles are \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return role
        }
        guard !chosen.isEmpty else { throw ValidationError("--roles names no role") }
        return Set(chosen)
    }

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        let logger = try connection.logger("chronicle", default: .info)
        let postgres = try connection.postgres()
        let redis = try RedisSettings(url: env["CHRONICLE_REDIS_URL"] ?? "redis://127.0.0.1:56379/0")
        let amqp = try AMQPSettings(url: env["CHRONICLE_AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:55672/%2f")
        let server = ServerSettings(
            host: host ?? env["CHRONICLE_HOST"] ?? "127.0.0.1",
            port: try port ?? env["CHRONICLE_PORT"].map { guard let p = Int($0) else { throw ValidationError("CHRONICLE_PORT is not a number") }; return p } ?? 8080)
        let migrator = try locateMigrator(migrationsDir)
        let roles = try chosenRoles()
        let agents = try AgentsConfiguration.fromEnvironment(logger: logger)
        let identity = try await IdentityConfiguration.fromEnvironment(logger: logger)
        let sandbox = try SandboxConfiguration.fromEnvironment(logger: logger)
        let grace = try ShutdownDeadline.grace(from: env)
        try await ChronicleDatabase.preflight(postgres, logger: logger)
        ShutdownDeadline.arm(grace: grace, logger: logger)

        let registry = PrometheusCollectorRegistry()
        let metrics = PrometheusMetricsFactory(registry: registry)
        MetricsSystem.bootstrap(metrics)
        let database = ChronicleDatabase(settings: postgres, logger: logger)
        let readSide = ReadSide(database: database, redis: RedisClient(settings: redis, logger: logger), metrics: metrics, logger: logger)
        var services = database.services
        if roles.contains(.projectors) { services += readSide.services }
        if roles.contains(.relay) { services.append(readSide.relay(amqp)) }
        var sandboxRunner: ProcessSandboxRunner?
        var workers: [Worker] = []
        if roles.contains(.workers) {
            let runner = sandbox.makeRunner(logger: logger)
            sandboxRunner = runner
            workers = [readSide.agentWorker(amqp, agents, sandbox: (runner, sandbox.settings.limits)), readSide.sandboxWorker(amqp, sandbox, runner: runner)]
            services += workers
            let values = EnvironmentValues(env)
            let policy = StallPolicy(
                grace: .seconds(try values.integer("CHRONICLE_RUN_WATCHDOG_GRACE_SECONDS", 60, 1...3600)),
                pendingGrace: .seconds(try values.integer("CHRONICLE_RUN_WATCHDOG_PENDING_SECONDS", 300, 1...86_400)))
            services.append(readSide.runWatchdog(agents: agents, sandbox: runner, policy: policy))
            logger.info("agent workers", metadata: [
                "llm": "\(agents.modelDescription)", "concurrency": "\(agents.workerConcurrency)",
            ])
            logger.info("sandbox workers", metadata: [
                "helper": "\(sandbox.settings.helper)", "python": "\(sandbox.settings.python)",
                "concurrency": "\(sandbox.settings.concurrency)", "warm": "\(sandbox.settings.warm)",
            ])
        }
        guard roles.contains(.api) else {
            logger.info("running without the API", metadata: ["roles": "\(roles.map(\.rawValue).sorted())"])
            let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
            return
        }
        let limiter = RedisRateLimiter(redis: readSide.redis, keyspace: readSide.namespace)
        let tokens = try await TokenService(settings: identity.tokens)
        let dependencies = AppDependencies(
            healthChecks: [
                HealthCheck(name: "postgres", critical: true) { try await database.ping() },
                HealthCheck(name: "redis", critical: false) { try await RedisProbe.ping(redis) },
                HealthCheck(name: "rabbitmq", critical: false) { try await AMQPProbe.check(amqp) },
                HealthCheck(name: "rate_limiter", critical: false) {
                    do {
                        try await limiter.ping()
                    } catch {
                        throw CLIError("cannot reach Redis: reads and cheap commands pass unlimited, executions are refused (503)")
                    }
                },
            ] + workers.map { worker in
                HealthCheck(name: "worker.\(worker.name)", critical: false) {
                    if let problem = worker.status.problem() { throw CLIError("cannot take work: \(problem)") }
                }
            },
            registry: registry,
            services: services,
            agents: AgentsController(
                store: database.eventStore, snapshots: database.snapshots, queries: readSide.agentQueries,
                settings: .init(
                    defaultModel: agents.defaultModel, defaultTimeoutSeconds: agents.timeoutSeconds, maxAttempts: agents.maxAttempts)),
            identity: .init(
                auth: AuthController(
                    tokens: tokens, store: database.eventStore, credentials: PostgresCredentialStore(client: database.client, logger: logger),
                    hasher: ScryptPasswordHasher(), limiter: limiter, loginsPerMinute: identity.loginsPerMinute),
                middleware: AuthMiddleware(tokens: tokens, users: UserDirectory(store: database.eventStore)),
                rateLimits: RateLimitMiddleware(limiter: limiter, settings: identity.rateLimits), corsOrigins: identity.corsOrigins),
            parked: ParkedController(parking: readSide.parking),
            sandbox: SandboxController(
                store: database.eventStore, queries: readSide.sandboxQueries, runner: sandboxRunner,
                settings: .init(limits: sandbox.settings.limits, maxTimeoutSeconds: sandbox.maxTimeoutSeconds, maxCodeBytes: sandbox.maxCodeBytes)),
            readiness: {
                do {
                    let pending = try await database.pendingMigrations(migrator)
                    return pending.isEmpty
                        ? .init(ready: true)
                        : .init(ready: false, reason: "migrations pending: run 'chronicle migrate'")
                } catch {
                    return .init(ready: false, reason: "database unreachable")
                }
            })
        let app = buildApplication(server: server, dependencies: dependencies, logger: logger)
        logger.info("serving", metadata: ["http.address": "http://\(server.host):\(server.port)"])
        try await app.runService()
    }
}
