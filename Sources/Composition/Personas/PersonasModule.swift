import API
import Adapters
import Commands
import Events
import Projections
import Workers

/// The Personas module: versioned prompt templates with labels, safe rendering, an LLM judge
/// (or the offline judge), and a regression gate on gated labels. Assembled after the llm module,
/// whose model it judges and answers evaluation cases with, and before Agents, whose runs render
/// their persona with its renderer.
public struct PersonasModule: ChronicleModule {
    public init() {}

    public var name: String { "personas" }
    public var events: [EventRegistry] { [.personas] }
    public var contracts: [IntegrationContract] { IntegrationContract.personas }
    public var projections: [ProjectionDeclaration] { [.postgres(PersonasProjection())] }
    public var settings: [SettingDescription] { PersonasConfiguration.settings }
    public var deciders: [AuditedDecider] { [AuditedDecider(PersonaDecider.self), AuditedDecider(PersonaReleaseDecider.self), AuditedDecider(PersonaValidationDecider.self)] }

    public func check(_ settings: Settings) throws { _ = try PersonasConfiguration(settings) }

    public func assemble(into app: inout Assembly) async throws {
        let configuration = try PersonasConfiguration(app.settings)
        let platform = app.platform
        let rendering = PersonaRendering(limits: configuration.limits)
        app.provide(rendering)
        if app.roles.contains(.workers) {
            guard let chat = app.capability(ChatModel.self) else { throw AssemblyError("the Personas module needs the llm module's model") }
            let judge = PersonaJudge(model: chat.offline ? nil : chat.model, modelName: configuration.judgeModel ?? chat.defaultModel)
            let validator = PersonaValidationWorker(store: platform.database.eventStore, judge: judge, logger: app.logger)
            let gates = PersonaGateWorker(
                store: platform.database.eventStore, judge: judge, responder: (chat.model, chat.defaultModel), rendering: rendering, logger: app.logger)
            // A judge call is bounded by the model's timeout and tries; a validation of 20
            // responses, or a gate of 100 cases x 2 versions x runs, may take many.
            app.add(
                worker: platform.worker(
                    name: "persona-validate", exchange: "persona.validate", delays: [.seconds(1), .seconds(5), .seconds(30)],
                    concurrency: configuration.workers, stallAfter: .seconds(1800), giveUp: validator.giveUp, handler: validator.handle))
            app.add(
                worker: platform.worker(
                    name: "persona-gate", exchange: "persona.gate", delays: [.seconds(1), .seconds(5), .seconds(30)],
                    concurrency: configuration.workers, stallAfter: .seconds(3600), giveUp: gates.giveUp, handler: gates.handle))
            app.logger.info("persona workers", metadata: ["judge": "\(judge.name)", "concurrency": "\(configuration.workers)"])
        }
        if app.roles.contains(.api) {
            let queries = PersonaReadModels(client: platform.database.client, store: platform.postgres(PersonasProjection()), logger: app.logger)
            app.add(
                routes: PersonasController(
                    store: platform.database.eventStore, rendering: rendering, queries: queries, hub: platform.hub,
                    settings: .init(gate: configuration.gate, gateWait: .seconds(configuration.gateWaitSeconds))
                ).mount)
        }
    }
}
