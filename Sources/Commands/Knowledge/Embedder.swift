import Foundation

/// Turns texts into vectors for retrieval. Every vector an embedder returns has `dimensions`
/// components and unit length (or is all zeros for a text with no tokens), so a dot product is
/// the cosine similarity.
public protocol Embedder: Sendable {
    /// The model as recorded beside every vector and answer, e.g.
    /// `wordllama-l2-supercat-256 (offline)`. Vectors of two models are never compared.
    var model: String { get }
    var dimensions: Int { get }
    func embed(_ texts: [String]) async throws -> [[Float]]
    /// The vectors, and the input tokens the embedder counted for them: what a provider bills
    /// (its reply's `usage`), or what the offline tokenizer cut. Nil when it does not say.
    func embedCounted(_ texts: [String]) async throws -> Embedded
}

/// Vectors and the tokens they were computed from.
public struct Embedded: Sendable, Equatable {
    public var vectors: [[Float]]
    public var tokens: Int?

    public init(vectors: [[Float]], tokens: Int?) {
        self.vectors = vectors
        self.tokens = tokens
    }
}

extension Embedder {
    /// An embedder that counts nothing says so (nil), rather than 0.
    public func embedCounted(_ texts: [String]) async throws -> Embedded {
        Embedded(vectors: try await embed(texts), tokens: nil)
    }
}

/// An embedder whose vector of a text is the normalised mean of its tokens' vectors (a static
/// embedding, as the offline default is). The vector of any passage of a text then costs a sum
/// over its tokens, so a search can score a chunk by its best passage instead of by its mean over
/// 500 tokens, where a sentence that answers the question is diluted by the rest.
public protocol PassageEmbedder: Embedder {
    /// Unit vectors of `text`'s passages of `window` tokens, one every `stride` tokens, the last
    /// ending with the text (one vector of the whole text when it is no longer than `window`).
    /// `context` (a heading path) is counted in every passage.
    func passageVectors(_ text: String, context: String, window: Int, stride: Int) -> [[Float]]
}

public enum EmbedderError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The model's files are missing or malformed; the message says which and how to install them.
    case unavailable(String)
    /// The provider answered, but not with one vector of the right size per text.
    case malformedReply(String)

    public var description: String {
        switch self {
        case .unavailable(let reason): "the embedder is unavailable: \(reason)"
        case .malformedReply(let reason): "the embedder's reply was malformed: \(reason)"
        }
    }
}

public enum VectorMath {
    /// `vector` scaled to unit length; all zeros stays all zeros.
    public static func normalized(_ vector: [Float]) -> [Float] {
        var sum: Float = 0
        for value in vector { sum += value * value }
        guard sum > 0 else { return vector }
        let scale = 1 / sum.squareRoot()
        return vector.map { $0 * scale }
    }
}
