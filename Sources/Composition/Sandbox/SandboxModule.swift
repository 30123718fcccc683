import API
import Adapters
import Commands
import Events
import Projections
import Workers

/// The code sandbox's runner, offered to modules that run code as a tool (Agents' `sandbox.python`).
public struct SandboxTool: Sendable {
    public let runner: any SandboxRunner
    public let limits: SandboxLimits
}

/// The Sandbox module: Python runs in namespaces, under seccomp and rlimits.
public struct SandboxModule: ChronicleModule {
    public init() {}

    public var name: String { "sandbox" }
    public var events: [EventRegistry] { [.sandbox] }
    public var contracts: [IntegrationContract] { IntegrationContract.sandbox }
    public var projections: [ProjectionDeclaration] { [.postgres(CodeExecutionsProjection())] }
    public var settings: [SettingDescription] { SandboxConfiguration.settings }
    public var deciders: [AuditedDecider] { [AuditedDecider(CodeExecutionDecider.self)] }

    public func check(_ settings: Settings) throws { _ = try SandboxConfiguration(settings) }

    public func assemble(into app: inout Assembly) async throws {
        let configuration = try SandboxConfiguration(app.settings)
        let platform = app.platform
        let queries = SandboxReadModels(client: platform.database.client, store: platform.postgres(CodeExecutionsProjection()), logger: app.logger)
        var runner: ProcessSandboxRunner?
        if app.roles.contains(.workers) {
            let sandbox = configuration.makeRunner(logger: app.logger)
            runner = sandbox
            app.provide(SandboxTool(runner: sandbox, limits: configuration.settings.limits))
            let worker = CodeExecutionWorker(store: platform.database.eventStore, sandbox: sandbox, logger: app.logger)
            // No retry delays beyond these: a run that failed to record is simply the next
            // attempt. A run lasts at most its time limit; a full pool with nothing settled for
            // twice the longest one cannot take work.
            app.add(
                worker: platform.worker(
                    name: "code-execute", exchange: "code.execute", delays: [.seconds(1), .seconds(5)],
                    concurrency: configuration.settings.concurrency, stallAfter: .seconds(2 * configuration.maxTimeoutSeconds + 30),
                    giveUp: worker.ending.giveUp, handler: worker.handle))
            app.supervise(
                SupervisedRuns(
                    name: name, candidates: { try await queries.unfinished(requestedBefore: $0, limit: $1) },
                    failIfStalled: { try await worker.ending.failIfStalled($0, policy: $1, now: $2) }))
            app.logger.info("sandbox workers", metadata: [
                "helper": "\(configuration.settings.helper)", "python": "\(configuration.settings.python)",
                "concurrency": "\(configuration.settings.concurrency)", "warm": "\(configuration.settings.warm)",
            ])
        }
        if app.roles.contains(.api) {
            app.add(
                routes: SandboxController(
                    store: platform.database.eventStore, queries: queries, runner: runner, host: ProcHostProbe(),
                    settings: .init(
                        limits: configuration.settings.limits, maxTimeoutSeconds: configuration.maxTimeoutSeconds,
                        maxCodeBytes: configuration.maxCodeBytes)
                ).mount)
        }
    }
}
