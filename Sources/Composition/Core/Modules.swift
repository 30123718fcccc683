import Commands
import Events

/// Chronicle's modules, in the order they are assembled: a module may use what an earlier one
/// provides (Agents uses Sandbox's runner, the llm module's model, Personas' renderer and
/// Knowledge's search tool; the Personas judge and the Knowledge answerer use the model; Identity
/// guards every route). Adding a module is adding its manifest here.
public enum Modules {
    public static let all: [any ChronicleModule] = [
        IdentityModule(), SandboxModule(), LanguageModelsModule(), PersonasModule(), KnowledgeModule(), AgentsModule(), SqlModule(), WorkflowsModule(), OperationsModule(), AnalyticsModule(), AuditModule(),
    ]

    /// Every event type any module has ever stored, with its upcasters.
    public static let registry = registry(of: all)

    /// Every integration contract: what the relay publishes.
    public static let contracts = contracts(of: all)

    public static func registry(of modules: [any ChronicleModule]) -> EventRegistry {
        modules.flatMap(\.events).reduce(EventRegistry()) { $0.registering($1) }
    }

    public static func contracts(of modules: [any ChronicleModule]) -> IntegrationContracts {
        IntegrationContracts(modules.flatMap(\.contracts))
    }

    /// Every decider, by its stream category.
    public static let deciders: [String: AuditedDecider] = Dictionary(
        all.flatMap(\.deciders).map { ($0.category, $0) }, uniquingKeysWith: { first, _ in first })

    /// Every documented setting, by module.
    public static var settings: [(module: String, settings: [SettingDescription])] { all.map { ($0.name, $0.settings) } }
}

extension EventRegistry {
    /// Every event type Chronicle has ever stored: the modules' registries together. A type is
    /// never removed: history must stay readable.
    public static var chronicle: EventRegistry { Modules.registry }
}

extension IntegrationContracts {
    /// Every module's contracts.
    public static var chronicle: IntegrationContracts { Modules.contracts }
}
