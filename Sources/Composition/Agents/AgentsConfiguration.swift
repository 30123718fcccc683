import Adapters
import Commands
import Foundation
import Logging

/// The language model's configuration section (the `llm` module): the model every module that
/// asks one uses (agent runs, the Personas judge). Without `CHRONICLE_LLM_BASE_URL` the offline
/// model answers, and says so.
struct LanguageModelConfiguration {
    var model: any LanguageModel
    /// `offline`, or the base URL of the configured model service (never the key).
    var modelDescription: String
    var defaultModel: String
    var prices: ModelPrices
    /// Tries, backoff, timeout and breaker of every model call (the embedder's too).
    var policy: ResilientLanguageModel.Policy

    static let settings: [SettingDescription] = [
        .init("chronicle.llm.base_url", "(offline model)", "OpenAI-compatible base URL, e.g. https://api.openai.com/v1"),
        .init("chronicle.llm.api_key", "$OPENAI_API_KEY", "The model service's key (never logged)"),
        .init("chronicle.llm.model", "gpt-4o-mini, or offline", "The model new agents get when a request names none"),
        .init("chronicle.llm.azure_deployment", "", "Azure OpenAI: the deployment (switches to Azure's URL scheme)"),
        .init("chronicle.llm.azure_api_version", "2024-10-21", "Azure OpenAI: the api-version"),
        .init("chronicle.llm.prices", "built-in table", "Price table: JSON, or a file holding it"),
        .init("chronicle.llm.tries", "3", "Tries per model call (1 to 10)"),
        .init("chronicle.llm.backoff_ms", "1000,2000,4000", "Waits between tries, in milliseconds"),
        .init("chronicle.llm.timeout_seconds", "30", "Timeout of one model call"),
        .init("chronicle.llm.breaker_min_calls", "10", "Calls in the window before the breaker may open"),
        .init("chronicle.llm.breaker_window_seconds", "60", "The breaker's window"),
        .init("chronicle.llm.breaker_open_seconds", "60", "How long the breaker stays open"),
    ]

    init(_ settings: Settings, logger: Logger) throws {
        var prices = ModelPrices.defaults
        if let raw = settings.text("chronicle.llm.prices") {
            let data = raw.hasPrefix("{") ? Data(raw.utf8) : try Data(contentsOf: URL(fileURLWithPath: raw))
            do {
                prices = try ModelPrices.parse(data)
            } catch {
                throw SettingsError("CHRONICLE_LLM_PRICES is not a price table: {\"model\": {\"input_per_million\": 1, \"output_per_million\": 2}}")
            }
        }
        let backoff = try settings.text("chronicle.llm.backoff_ms", default: "1000,2000,4000").split(separator: ",").map { part -> Duration in
            guard let ms = Int(part.trimmingCharacters(in: .whitespaces)), ms >= 0 else {
                throw SettingsError("CHRONICLE_LLM_BACKOFF_MS must be comma-separated milliseconds, e.g. 1000,2000,4000")
            }
            return .milliseconds(ms)
        }
        let policy = ResilientLanguageModel.Policy(
            tries: try settings.integer("chronicle.llm.tries", default: 3, range: 1...10), backoff: backoff,
            timeout: .milliseconds(Int(try settings.number("chronicle.llm.timeout_seconds", default: 30) * 1000)),
            breaker: CircuitBreaker.Configuration(
                failureRateThreshold: 0.5, minimumCalls: try settings.integer("chronicle.llm.breaker_min_calls", default: 10, range: 1...10_000),
                windowSeconds: try settings.number("chronicle.llm.breaker_window_seconds", default: 60),
                openSeconds: try settings.number("chronicle.llm.breaker_open_seconds", default: 60)))
        let base: any LanguageModel
        var defaultModel = settings.text("chronicle.llm.model")
        if let url = settings.text("chronicle.llm.base_url") {
            guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? "") else {
                throw SettingsError("CHRONICLE_LLM_BASE_URL must be an http(s) URL, e.g. https://api.openai.com/v1")
            }
            let flavor: OpenAICompatibleModel.Settings.Flavor
            if let deployment = settings.text("chronicle.llm.azure_deployment") {
                flavor = .azure(deployment: deployment, apiVersion: settings.text("chronicle.llm.azure_api_version", default: "2024-10-21"))
            } else {
                flavor = .openAI
            }
            base = OpenAICompatibleModel(
                settings: .init(
                    baseURL: url, apiKey: settings.text("chronicle.llm.api_key", secret: true) ?? settings.text("openai.api_key", secret: true),
                    flavor: flavor, requestTimeout: policy.timeout),
                logger: logger)
            modelDescription = url
            defaultModel = defaultModel ?? "gpt-4o-mini"
        } else {
            base = OfflineLanguageModel()
            modelDescription = OfflineLanguageModel.modelName
        }
        model = ResilientLanguageModel(base, policy: policy)
        self.policy = policy
        self.defaultModel = defaultModel ?? OfflineLanguageModel.modelName
        self.prices = prices
    }
}

/// The Agents module's configuration section.
struct AgentsConfiguration {
    var workerConcurrency: Int
    var timeoutSeconds: Int
    var maxAttempts: Int

    static let settings: [SettingDescription] = [
        .init("chronicle.agent.workers", "10", "Agent runs at once in this process (1 to 1000)"),
        .init("chronicle.agent.timeout_seconds", "300", "A run's time limit when the request sets none (1 to 3600)"),
        .init("chronicle.agent.max_attempts", "3", "Attempts before an interrupted run fails (1 to 10)"),
    ]

    init(_ settings: Settings) throws {
        workerConcurrency = try settings.integer("chronicle.agent.workers", default: 10, range: 1...1000)
        timeoutSeconds = try settings.integer("chronicle.agent.timeout_seconds", default: 300, range: 1...3600)
        maxAttempts = try settings.integer("chronicle.agent.max_attempts", default: 3, range: 1...10)
    }
}
