import API
import Adapters
import Events
import Projections

/// The Analytics module: read models of every agent and sandbox run (`agent_run_analytics`,
/// `sandbox_run_analytics`), rebuilt from the log like every other, and the routes that
/// aggregate them exactly. It has no events or settings of its own.
public struct AnalyticsModule: ChronicleModule {
    public init() {}

    public var name: String { "analytics" }
    public var events: [EventRegistry] { [] }
    public var contracts: [IntegrationContract] { [] }
    public var projections: [ProjectionDeclaration] {
        [.postgres(AgentRunAnalyticsProjection()), .postgres(SandboxRunAnalyticsProjection())]
    }
    public var settings: [SettingDescription] { [] }

    public func check(_ settings: Settings) throws {}

    public func assemble(into app: inout Assembly) async throws {
        guard app.roles.contains(.api) else { return }
        app.add(routes: AnalyticsController(
            queries: AnalyticsReadModels(client: app.platform.database.client, logger: app.logger)).mount)
    }
}
