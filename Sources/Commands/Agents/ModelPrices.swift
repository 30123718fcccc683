import Foundation
import Events

/// What a model costs, in US dollars per million tokens, by model name. A name matches its own
/// entry or the longest entry it starts with (`gpt-4o-2024-08-06` → `gpt-4o`). Unknown models
/// cost 0 and say so in the log, never in a guess.
public struct ModelPrices: Sendable, Equatable, Codable {
    public struct Price: Sendable, Equatable, Codable {
        public var inputPerMillion: Double
        public var outputPerMillion: Double

        public init(inputPerMillion: Double, outputPerMillion: Double) {
            self.inputPerMillion = inputPerMillion
            self.outputPerMillion = outputPerMillion
        }
    }

    public var prices: [String: Price]

    public init(_ prices: [String: Price]) {
        self.prices = prices
    }

    /// List prices of common OpenAI models; override with `CHRONICLE_LLM_PRICES`.
    public static let defaults = ModelPrices([
        "offline": Price(inputPerMillion: 0, outputPerMillion: 0),
        "gpt-4": Price(inputPerMillion: 30, outputPerMillion: 60),
        "gpt-4-turbo": Price(inputPerMillion: 10, outputPerMillion: 30),
        "gpt-4o": Price(inputPerMillion: 2.5, outputPerMillion: 10),
        "gpt-4o-mini": Price(inputPerMillion: 0.15, outputPerMillion: 0.6),
        "gpt-4.1": Price(inputPerMillion: 2, outputPerMillion: 8),
        "gpt-4.1-mini": Price(inputPerMillion: 0.4, outputPerMillion: 1.6),
        "gpt-3.5-turbo": Price(inputPerMillion: 0.5, outputPerMillion: 1.5),
        // Embedding models bill input tokens only.
        "text-embedding-3-small": Price(inputPerMillion: 0.02, outputPerMillion: 0),
        "text-embedding-3-large": Price(inputPerMillion: 0.13, outputPerMillion: 0),
        "text-embedding-ada-002": Price(inputPerMillion: 0.1, outputPerMillion: 0),
    ])

    public func price(of model: String) -> Price? {
        if let exact = prices[model] { return exact }
        return prices.filter { model.hasPrefix($0.key) }.max { $0.key.count < $1.key.count }?.value
    }

    /// Dollars, rounded to a millionth of a cent so sums stay exact enough to compare.
    public func cost(of usage: TokenUsage, model: String) -> Double {
        guard let price = price(of: model) else { return 0 }
        let dollars = (Double(usage.promptTokens) * price.inputPerMillion + Double(usage.completionTokens) * price.outputPerMillion) / 1_000_000
        return (dollars * 1e8).rounded() / 1e8
    }

    /// Reads a JSON object `{"model": {"input_per_million": 1, "output_per_million": 2}, ...}`,
    /// merged over the defaults.
    public static func parse(_ json: Data) throws -> ModelPrices {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let overrides = try decoder.decode([String: Price].self, from: json)
        return ModelPrices(defaults.prices.merging(overrides) { $1 })
    }
}
