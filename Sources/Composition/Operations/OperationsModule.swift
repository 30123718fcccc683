import API
import Events
import Projections

/// Operations: what is about the log itself rather than one domain. Event counts by type,
/// parked events for admins, and the log as a live stream for admins.
public struct OperationsModule: ChronicleModule {
    public init() {}

    public var name: String { "operations" }
    public var events: [EventRegistry] { [] }
    public var contracts: [IntegrationContract] { [] }
    public var projections: [ProjectionDeclaration] { [.postgres(EventCountsProjection())] }
    public var settings: [SettingDescription] { [] }

    public func check(_ settings: Settings) throws {}

    public func assemble(into app: inout Assembly) async throws {
        guard app.roles.contains(.api) else { return }
        app.add(routes: ParkedController(parking: app.platform.parking).mount)
        app.add(routes: EventStreamController(hub: app.platform.hub).mount)
    }
}
