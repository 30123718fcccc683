import Commands
import Events
import Logging
import Projections

/// The configured chat model, offered to modules that ask a model (agent runs, the Personas
/// judge and its regression gate).
public struct ChatModel: Sendable {
    public let model: any LanguageModel
    /// The model name requests use when they name none.
    public let defaultModel: String
    /// The price table cost is computed with.
    public let prices: ModelPrices
    /// True when no model service is configured and the offline model answers.
    public let offline: Bool
    /// `offline`, or the service's base URL (never the key).
    public let description: String
}

/// The language model as a module of its own: its configuration section (`chronicle.llm.*`) and
/// the `ChatModel` capability, assembled before every module that asks a model. It has no events,
/// routes or read models.
public struct LanguageModelsModule: ChronicleModule {
    public init() {}

    public var name: String { "llm" }
    public var events: [EventRegistry] { [] }
    public var contracts: [IntegrationContract] { [] }
    public var projections: [ProjectionDeclaration] { [] }
    public var settings: [SettingDescription] { LanguageModelConfiguration.settings }

    public func check(_ settings: Settings) throws { _ = try LanguageModelConfiguration(settings, logger: Logger(label: "chronicle.check")) }

    public func assemble(into app: inout Assembly) async throws {
        let configuration = try LanguageModelConfiguration(app.settings, logger: app.logger)
        app.provide(ChatModel(
            model: configuration.model, defaultModel: configuration.defaultModel, prices: configuration.prices,
            offline: configuration.modelDescription == OfflineLanguageModel.modelName, description: configuration.modelDescription))
    }
}
