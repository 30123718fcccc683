import API
import Adapters
import Commands
import Events
import Projections

/// The Workflows module: graphs of nodes and edges edited by fine-grained events, with published
/// versions, restores, deploys (`workflow.deployed`), a semantic diff, time travel and blame.
public struct WorkflowsModule: ChronicleModule {
    public init() {}

    public var name: String { "workflows" }
    public var events: [EventRegistry] { [.workflows] }
    public var contracts: [IntegrationContract] { IntegrationContract.workflows }
    public var projections: [ProjectionDeclaration] { [.postgres(WorkflowsProjection())] }
    public var settings: [SettingDescription] {
        [
            .init("chronicle.workflows.live_ops_per_second", "20", "Operation messages a live session may send a second, in bursts of twice that (1 to 100000)"),
            .init("chronicle.workflows.live_presence_per_second", "10", "Presence messages a live session may send a second; the excess is dropped (1 to 1000)"),
            .init("chronicle.workflows.live_outbound_queue", "512", "Messages waiting to be written to a live session before it is resynced and closed (16 to 100000)"),
        ]
    }

    static func live(_ settings: Settings) throws -> WorkflowLive.Settings {
        var live = WorkflowLive.Settings()
        live.opsPerSecond = Double(try settings.integer("chronicle.workflows.live_ops_per_second", default: 20, range: 1...100_000))
        live.presencePerSecond = Double(try settings.integer("chronicle.workflows.live_presence_per_second", default: 10, range: 1...1000))
        live.outboundQueue = try settings.integer("chronicle.workflows.live_outbound_queue", default: 512, range: 16...100_000)
        return live
    }
    public var deciders: [AuditedDecider] { [AuditedDecider(WorkflowDecider.self)] }

    public func check(_ settings: Settings) throws { _ = try Self.live(settings) }

    public func assemble(into app: inout Assembly) async throws {
        let platform = app.platform
        if app.roles.contains(.api) {
            // One fold per workflow per process, then forward: an edit reads only the events
            // since the last one this process saw. Edits of one workflow in this process queue
            // for it; processes still race in the store, and the loser retries (up to 20 times).
            let workflows = CommandHandler<WorkflowDecider>(
                store: platform.database.eventStore, maxAttempts: 20, memo: StateMemo(capacity: 1024), gate: StreamGate())
            let queries = WorkflowReadModels(client: platform.database.client, store: platform.postgres(WorkflowsProjection()), logger: app.logger)
            let controller = WorkflowsController(workflows: workflows, queries: queries, doorbell: platform.doorbell)
            app.add(routes: controller.mount)
            if let identity = app.identity {
                let live = WorkflowLive(
                    workflows: workflows, hub: platform.hub, doorbell: platform.doorbell,
                    presence: RedisPresenceStore(redis: platform.redis, namespace: platform.namespace),
                    authenticate: { try await identity.middleware.principal(token: $0) }, settings: try Self.live(app.settings), logger: app.logger)
                app.add(routes: live.mount)
                app.add(webSocketRoutes: live.webSocketMount)
            }
        }
    }
}
