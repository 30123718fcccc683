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
