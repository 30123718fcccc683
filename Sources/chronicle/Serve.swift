import CLISupport
import API
import Adapters
import ArgumentParser
import Composition
import Foundation
import Logging
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
        let settings = Settings()
        let logger = try connection.logger("chronicle", default: .info)
        let postgres = try connection.postgres()
        let server = ServerSettings(
            host: host ?? settings.text("chronicle.host", default: "127.0.0.1"),
            port: try port ?? settings.integer("chronicle.port", default: 8080, range: 1...65535))
        let migrator = try locateMigrator(migrationsDir)
        let roles = try chosenRoles()
        let grace = try ShutdownDeadline.grace(settings)
        let registry = PrometheusCollectorRegistry()
        let metrics = PrometheusMetricsFactory(registry: registry)
        let database = ChronicleDatabase(settings: postgres, logger: logger)
        let platform = try ChronicleApp.platform(postgres: database, settings: settings, metrics: metrics, logger: logger)
        // Every module's settings are validated here, before anything connects.
        let app = try await ChronicleApp.assemble(platform: platform, settings: settings, roles: roles)
        try await ChronicleDatabase.preflight(postgres, logger: logger)
        ShutdownDeadline.arm(grace: grace, logger: logger)
        MetricsSystem.bootstrap(metrics)
        let services = database.services + app.services
        guard roles.contains(.api) else {
            logger.info("running without the API", metadata: ["roles": "\(roles.map(\.rawValue).sorted())"])
            let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
            return
        }
        let dependencies = ChronicleApp.dependencies(app, registry: registry, services: services) {
            do {
                let pending = try await database.pendingMigrations(migrator)
                return pending.isEmpty ? .init(ready: true) : .init(ready: false, reason: "migrations pending: run 'chronicle migrate'")
            } catch {
                return .init(ready: false, reason: "database unreachable")
            }
        }
        let application = buildApplication(server: server, dependencies: dependencies, logger: logger)
        logger.info("serving", metadata: ["http.address": "http://\(server.host):\(server.port)"])
        try await application.runService()
    }
}
