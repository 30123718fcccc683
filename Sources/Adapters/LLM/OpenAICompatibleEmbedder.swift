import AsyncHTTPClient
import Commands
import Foundation
import Logging
import NIOCore

/// `POST {base}/embeddings` of an OpenAI-compatible service (`{model, input: [texts]}` →
/// `{data: [{index, embedding}]}`), vectors normalised to unit length. Retries and the breaker
/// are `ResilientEmbedder`'s; HTTP errors become the chat port's errors, so both classify alike.
public struct OpenAICompatibleEmbedder: Embedder {
    public let model: String
    let chat: OpenAICompatibleModel
    /// Known after the first reply; 0 before.
    public var dimensions: Int { 0 }

    public init(settings: OpenAICompatibleModel.Settings, model: String, client: HTTPClient = OpenAICompatibleModel.client, logger: Logger) {
        self.model = model
        chat = OpenAICompatibleModel(settings: settings, client: client, logger: logger)
    }

    struct Reply: Decodable {
        struct Item: Decodable {
            var index: Int?
            var embedding: [Float]
        }
        struct Usage: Decodable {
            var promptTokens: Int?

            enum CodingKeys: String, CodingKey {
                case promptTokens = "prompt_tokens"
            }
        }
        var data: [Item]
        var usage: Usage?
    }

    public func embed(_ texts: [String]) async throws -> [[Float]] {
        try await embedCounted(texts).vectors
    }

    /// The vectors and the reply's `usage.prompt_tokens`: what the provider bills.
    public func embedCounted(_ texts: [String]) async throws -> Embedded {
        guard !texts.isEmpty else { return Embedded(vectors: [], tokens: 0) }
        var http = HTTPClientRequest(url: "\(chat.settings.baseURL)/embeddings")
        http.method = .POST
        http.headers.add(name: "Content-Type", value: "application/json")
        if let key = chat.settings.apiKey, !key.isEmpty {
            switch chat.settings.flavor {
            case .openAI: http.headers.add(name: "Authorization", value: "Bearer \(key)")
            case .azure: http.headers.add(name: "api-key", value: key)
            }
        }
        http.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: ["model": model, "input": texts])))
        let response = try await chat.send(http)
        let body = try await chat.collect(response)
        try OpenAICompatibleModel.check(response, body: body)
        let reply: Reply
        do {
            reply = try JSONDecoder().decode(Reply.self, from: body)
        } catch {
            throw EmbedderError.malformedReply("not an embeddings reply (\(OpenAICompatibleModel.describe(error)))")
        }
        guard reply.data.count == texts.count else { throw EmbedderError.malformedReply("\(reply.data.count) vectors for \(texts.count) texts") }
        let ordered = reply.data.enumerated().sorted { ($0.element.index ?? $0.offset) < ($1.element.index ?? $1.offset) }.map(\.element.embedding)
        guard let size = ordered.first?.count, size > 0, ordered.allSatisfy({ $0.count == size }) else {
            throw EmbedderError.malformedReply("vectors of different or zero sizes")
        }
        return Embedded(vectors: ordered.map(VectorMath.normalized), tokens: reply.usage?.promptTokens)
    }
}
