import API
import Adapters
import Commands
import Events
import Projections
import Workers

/// The Audit module: the log read as it is, for people who must answer for it. A stream's
/// history and every event of one request, owner-scoped from the log itself, and the signed
/// checkpoints that make the hash-chained log tamper-evident (`chronicle audit verify`).
public struct AuditModule: ChronicleModule {
    public init() {}

    public var name: String { "audit" }
    public var events: [EventRegistry] { [] }
    public var contracts: [IntegrationContract] { [] }
    public var projections: [ProjectionDeclaration] { [] }
    public var settings: [SettingDescription] { AuditConfiguration.settings }

    public func check(_ settings: Settings) throws { _ = try AuditConfiguration(settings) }

    public func assemble(into app: inout Assembly) async throws {
        let configuration = try AuditConfiguration(app.settings)
        if app.roles.contains(.projectors) {
            if let key = configuration.key {
                app.add(service: AuditCheckpointer(
                    log: PostgresAuditLog(client: app.platform.database.client, logger: app.logger), key: key,
                    interval: configuration.interval, logger: app.logger))
            } else {
                app.logger.warning("CHRONICLE_AUDIT_SIGNING_KEY is not set: the log is hash-chained, but no checkpoint is signed")
            }
        }
        guard app.roles.contains(.api) else { return }
        let store = app.platform.database.eventStore
        app.add(routes: AuditController(store: store, registry: Modules.registry, deciders: Modules.deciders).mount)
        // Replays run the tools as the agent workers would, with this process's sandbox if it has one.
        let tool = app.capability(SandboxTool.self)
        let replayer = AgentRunReplay(
            prices: app.capability(ChatModel.self)?.prices ?? .defaults, sandbox: tool.map { ($0.runner, $0.limits) }, logger: app.logger)
        let personas = app.capability(PersonaRendering.self).map { PersonaPrompts(store: store, rendering: $0) }
        app.add(routes: AuditRunsController(store: store, replayer: replayer, personas: personas).mount)
    }
}
