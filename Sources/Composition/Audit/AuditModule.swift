import API
import Events
import Projections

/// The Audit module: the log read as it is, for people who must answer for it. A stream's
/// history and every event of one request, owner-scoped from the log itself. It has no events,
/// read models or settings of its own.
public struct AuditModule: ChronicleModule {
    public init() {}

    public var name: String { "audit" }
    public var events: [EventRegistry] { [] }
    public var contracts: [IntegrationContract] { [] }
    public var projections: [ProjectionDeclaration] { [] }
    public var settings: [SettingDescription] { [] }

    public func check(_ settings: Settings) throws {}

    public func assemble(into app: inout Assembly) async throws {
        guard app.roles.contains(.api) else { return }
        app.add(routes: AuditController(store: app.platform.database.eventStore, registry: Modules.registry).mount)
    }
}
