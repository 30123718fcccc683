import API
import Adapters
import Commands
import Events
import Logging
import Projections
import Workers

/// The Agents module: agents, and their runs with tokens and cost. Assembled after Sandbox, whose
/// runner its `sandbox.python` tool uses where this process has one, after the llm module, whose
/// model it runs, and after Personas, whose renderer gives runs their persona's prompt.
public struct AgentsModule: ChronicleModule {
    public init() {}

    public var name: String { "agents" }
    public var events: [EventRegistry] { [.agents, .agentExecutions] }
    public var contracts: [IntegrationContract] { IntegrationContract.agents }
    public var projections: [ProjectionDeclaration] {
        [
            .postgres(AgentListProjection()), .postgres(AgentExecutionsProjection()), .postgres(AgentUsageProjection()),
            .redis(AgentSummaryProjection()), .redis(ExecutionCacheProjection()),
        ]
    }
    public var settings: [SettingDescription] { AgentsConfiguration.settings }
    public var deciders: [AuditedDecider] { [AuditedDecider(AgentDecider.self), AuditedDecider(AgentExecutionDecider.self)] }

    public func check(_ settings: Settings) throws { _ = try AgentsConfiguration(settings) }

    public func assemble(into app: inout Assembly) async throws {
        let configuration = try AgentsConfiguration(app.settings)
        guard let chat = app.capability(ChatModel.self) else { throw AssemblyError("the Agents module needs the llm module's model") }
        let personas = app.capability(PersonaRendering.self).map { PersonaPrompts(store: app.platform.database.eventStore, rendering: $0) }
        let platform = app.platform
        let queries = AgentReadModels(
            client: platform.database.client, redis: platform.redis, agents: platform.postgres(AgentListProjection()),
            executions: platform.postgres(AgentExecutionsProjection()), cache: platform.redis(ExecutionCacheProjection()), logger: app.logger)
        if app.roles.contains(.workers) {
            let tool = app.capability(SandboxTool.self)
            let runner = AgentExecutionRunner(
                store: platform.database.eventStore, model: chat.model, prices: chat.prices,
                sandbox: tool.map { ($0.runner, $0.limits) }, knowledge: app.capability(KnowledgeSearchTool.self), logger: app.logger)
            app.add(
                worker: platform.worker(
                    name: "agent-execute", exchange: "agent.execute", delays: [.seconds(1), .seconds(5), .seconds(30)],
                    concurrency: configuration.workerConcurrency, stallAfter: .seconds(2 * configuration.timeoutSeconds + 30),
                    giveUp: runner.ending.giveUp, handler: runner.handle))
            app.supervise(
                SupervisedRuns(
                    name: name, candidates: { try await queries.unfinishedExecutions(requestedBefore: $0, limit: $1) },
                    failIfStalled: { try await runner.ending.failIfStalled($0, policy: $1, now: $2) }))
            app.logger.info("agent workers", metadata: [
                "llm": "\(chat.description)", "concurrency": "\(configuration.workerConcurrency)",
            ])
        }
        if app.roles.contains(.api) {
            app.add(
                routes: AgentsController(
                    store: platform.database.eventStore, snapshots: platform.database.snapshots, queries: queries, hub: platform.hub, personas: personas,
                    settings: .init(
                        defaultModel: chat.defaultModel, defaultTimeoutSeconds: configuration.timeoutSeconds,
                        maxAttempts: configuration.maxAttempts)
                ).mount)
        }
    }
}
