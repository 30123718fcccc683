import Events
import Foundation

/// The agents' `knowledge.search` tool: hybrid search over a knowledge base the run's owner owns
/// (any other base is "no such knowledge base", as the API says it). The model gets each chunk's
/// text with its source, offsets and content hash, numbered, so it can cite them.
public struct KnowledgeSearchTool: Sendable {
    public static let maxTopK = 10
    /// Characters of a chunk's text the model is given.
    public static let textLimit = 1_500

    let bases: CommandHandler<KnowledgeBaseDecider>
    let retriever: KnowledgeRetriever

    public init(store: any EventStore, retriever: KnowledgeRetriever) {
        bases = CommandHandler(store: store, memo: KnowledgeBaseDecider.memo())
        self.retriever = retriever
    }

    /// The tool's answer for the model (JSON), and whether it is an error.
    public func search(owner: String, arguments: String) async -> (result: String, isError: Bool) {
        guard let data = arguments.data(using: .utf8), let object = try? JSONDecoder().decode(JSONValue.self, from: data),
            let baseText = object["knowledge_base_id"]?.stringValue, let query = object["query"]?.stringValue,
            !query.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, query.count <= 2_000
        else { return ("arguments must be a JSON object with a string 'knowledge_base_id' and a non-empty string 'query' (at most 2000 characters)", true) }
        var topK = 5
        if let value = object["top_k"] {
            guard case .number(let number) = value, number == number.rounded(), (1...Double(Self.maxTopK)).contains(number) else {
                return ("top_k must be an integer from 1 to \(Self.maxTopK)", true)
            }
            topK = Int(number)
        }
        guard let baseID = UUID(uuidString: baseText) else { return ("no such knowledge base", true) }
        do {
            let (base, version) = try await bases.load(KnowledgeBaseDecider.streamID(baseID).description)
            guard base.exists, base.ownerID == owner else { return ("no such knowledge base", true) }
            guard base.embeddingModel == retriever.embedder.model else {
                return ("the knowledge base holds vectors of \(base.embeddingModel), and this worker embeds with \(retriever.embedder.model)", true)
            }
            let found = try await retriever.search(baseID, query: query.replacingOccurrences(of: "\u{0}", with: " "), k: topK, mode: .hybrid)
            let results: [JSONValue] = found.enumerated().map { index, hit in
                let chunk = hit.chunk
                let text = chunk.text.count <= Self.textLimit ? chunk.text : String(chunk.text.prefix(Self.textLimit)) + " [cut]"
                return .object([
                    "marker": .number(Double(index + 1)), "document": .string(base.documents[chunk.documentID]?.content.name ?? ""),
                    "document_id": .string(chunk.documentID.uuidString.lowercased()), "document_version": .number(Double(chunk.documentVersion)),
                    "heading_path": .array(chunk.headingPath.map(JSONValue.string)), "start": .number(Double(chunk.start)), "end": .number(Double(chunk.end)),
                    "chunk_id": .string(chunk.chunkID.uuidString.lowercased()), "content_hash": .string(chunk.contentHash), "text": .string(text),
                ])
            }
            let answer = JSONValue.object(["index_version": .number(Double(version)), "results": .array(results)])
            return (String(decoding: (try? EventCoding.encode(answer)) ?? Data(), as: UTF8.self), false)
        } catch {
            return ("the knowledge base could not be searched: \(error)", true)
        }
    }
}
