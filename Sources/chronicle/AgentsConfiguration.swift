import Adapters
import ArgumentParser
import Commands
import Foundation
import Logging

/// The Agents module's settings, from the environment (see the README's table). Without
/// `CHRONICLE_LLM_BASE_URL` the offline model answers every run, and says so.
struct AgentsConfiguration {
    var model: any LanguageModel
    /// `offline`, or the base URL of the configured model service (never the key).
    var modelDescription: String
    var defaultModel: String
    var prices: ModelPrices
    var workerConcurrency: Int
    var timeoutSeconds: Int
    var maxAttempts: Int

    static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment, logger: Logger) throws -> AgentsConfiguration {
        let values = EnvironmentValues(env)
        func integer(_ name: String, _ fallback: Int, _ range: ClosedRange<Int>) throws -> Int {
            try values.integer(name, fallback, range)
        }
        func number(_ name: String, _ fallback: Double) throws -> Double {
            guard let text = env[name], !text.isEmpty else { return fallback }
            guard let value = Double(text), value >= 0 else { throw ValidationError("\(name) must be a non-negative number") }
            return value
        }
        var prices = ModelPrices.defaults
        if let raw = env["CHRONICLE_LLM_PRICES"], !raw.isEmpty {
            let data = raw.hasPrefix("{") ? Data(raw.utf8) : try Data(contentsOf: URL(fileURLWithPath: raw))
            do {
                prices = try ModelPrices.parse(data)
            } catch {
                throw ValidationError("CHRONICLE_LLM_PRICES is not a price table: {\"model\": {\"input_per_million\": 1, \"output_per_million\": 2}}")
            }
        }
        let backoff = try (env["CHRONICLE_LLM_BACKOFF_MS"] ?? "1000,2000,4000").split(separator: ",").map { part -> Duration in
            guard let ms = Int(part.trimmingCharacters(in: .whitespaces)), ms >= 0 else {
                throw ValidationError("CHRONICLE_LLM_BACKOFF_MS must be comma-separated milliseconds, e.g. 1000,2000,4000")
            }
            return .milliseconds(ms)
        }
        let policy = ResilientLanguageModel.Policy(
            tries: try integer("CHRONICLE_LLM_TRIES", 3, 1...10), backoff: backoff,
            timeout: .milliseconds(Int(try number("CHRONICLE_LLM_TIMEOUT_SECONDS", 30) * 1000)),
            breaker: CircuitBreaker.Configuration(
                failureRateThreshold: 0.5, minimumCalls: try integer("CHRONICLE_LLM_BREAKER_MIN_CALLS", 10, 1...10_000),
                windowSeconds: try number("CHRONICLE_LLM_BREAKER_WINDOW_SECONDS", 60),
                openSeconds: try number("CHRONICLE_LLM_BREAKER_OPEN_SECONDS", 60)))
        let base: any LanguageModel
        let description: String
        var defaultModel = env["CHRONICLE_LLM_MODEL"].flatMap { $0.isEmpty ? nil : $0 }
        if let url = env["CHRONICLE_LLM_BASE_URL"], !url.isEmpty {
            guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? "") else {
                throw ValidationError("CHRONICLE_LLM_BASE_URL must be an http(s) URL, e.g. https://api.openai.com/v1")
            }
            let flavor: OpenAICompatibleModel.Settings.Flavor
            if let deployment = env["CHRONICLE_LLM_AZURE_DEPLOYMENT"], !deployment.isEmpty {
                flavor = .azure(deployment: deployment, apiVersion: env["CHRONICLE_LLM_AZURE_API_VERSION"] ?? "2024-10-21")
            } else {
                flavor = .openAI
            }
            base = OpenAICompatibleModel(
                settings: .init(baseURL: url, apiKey: env["CHRONICLE_LLM_API_KEY"] ?? env["OPENAI_API_KEY"], flavor: flavor,
                                requestTimeout: policy.timeout),
                logger: logger)
            description = url
            defaultModel = defaultModel ?? "gpt-4o-mini"
        } else {
            base = OfflineLanguageModel()
            description = OfflineLanguageModel.modelName
        }
        return AgentsConfiguration(
            model: ResilientLanguageModel(base, policy: policy), modelDescription: description,
            defaultModel: defaultModel ?? OfflineLanguageModel.modelName, prices: prices,
            workerConcurrency: try integer("CHRONICLE_AGENT_WORKERS", 10, 1...1000),
            timeoutSeconds: try integer("CHRONICLE_AGENT_TIMEOUT_SECONDS", 300, 1...3600),
            maxAttempts: try integer("CHRONICLE_AGENT_MAX_ATTEMPTS", 3, 1...10))
    }
}
