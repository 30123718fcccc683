import Foundation

/// One ranked chunk: its id and a score whose meaning depends on the ranking that made it
/// (cosine similarity, full-text rank, or fused).
public struct ScoredChunk: Sendable, Equatable {
    public var chunkID: UUID
    public var score: Double

    public init(chunkID: UUID, score: Double) {
        self.chunkID = chunkID
        self.score = score
    }
}

/// Reciprocal Rank Fusion (Cormack, Clarke and Büttcher, SIGIR 2009): each ranking adds
/// 1 / (k + rank) for every chunk it holds, ranks from 1. Scores of different kinds (cosine, BM25,
/// `ts_rank_cd`) are never mixed, only ranks, which is why it beats weighted score sums.
public enum ReciprocalRankFusion {
    public static let defaultK = 60

    /// The fused ranking, best first; a chunk in several rankings appears once. Ties keep the
    /// order of first appearance (the earlier ranking, then the better rank).
    public static func fuse(_ rankings: [[UUID]], k: Int = defaultK, limit: Int? = nil) -> [ScoredChunk] {
        var scores: [UUID: Double] = [:]
        var firstSeen: [UUID: Int] = [:]
        var order = 0
        for ranking in rankings {
            var seen = Set<UUID>()
            for (index, id) in ranking.enumerated() where seen.insert(id).inserted {
                scores[id, default: 0] += 1 / Double(k + index + 1)
                if firstSeen[id] == nil {
                    firstSeen[id] = order
                    order += 1
                }
            }
        }
        let fused = scores.map { ScoredChunk(chunkID: $0.key, score: $0.value) }
            .sorted { $0.score != $1.score ? $0.score > $1.score : firstSeen[$0.chunkID]! < firstSeen[$1.chunkID]! }
        return limit.map { Array(fused.prefix($0)) } ?? fused
    }
}

/// Exact nearest neighbours by cosine similarity over unit vectors held in one contiguous float32
/// matrix, scanned 16 lanes at a time. Behind `VectorIndex`, so an approximate index (or pgvector
/// where a deployment has it) can take its place.
public struct ExactVectorMatrix: Sendable {
    public let dimensions: Int
    public private(set) var ids: [UUID] = []
    private var values: [Float] = []

    public init(dimensions: Int) {
        self.dimensions = dimensions
    }

    public var count: Int { ids.count }
    /// What the rows and ids take in memory.
    public var bytes: Int { ids.count * (dimensions * 4 + 16) }

    /// Adds a vector (already unit length); a wrong size is a programming error upstream.
    public mutating func append(id: UUID, vector: [Float]) {
        precondition(vector.count == dimensions, "a \(vector.count)-dimensional vector in a \(dimensions)-dimensional matrix")
        ids.append(id)
        values += vector
    }

    /// The `k` most similar rows to `query`, best first (ties by insertion order).
    public func nearest(to query: [Float], k: Int) -> [ScoredChunk] {
        guard k > 0, !ids.isEmpty, query.count == dimensions else { return [] }
        var scores = [Float](repeating: 0, count: ids.count)
        values.withUnsafeBufferPointer { matrix in
            query.withUnsafeBufferPointer { query in
                guard let rows = matrix.baseAddress, let asked = query.baseAddress else { return }
                let lanes = dimensions / 16 * 16
                // The query's lanes loaded once; each row's read straight from memory (building a
                // SIMD vector from a slice goes element by element).
                let queryLanes = stride(from: 0, to: lanes, by: 16).map { UnsafeRawPointer(asked + $0).loadUnaligned(as: SIMD16<Float>.self) }
                for row in 0..<ids.count {
                    let base = rows + row * dimensions
                    var accumulator = SIMD16<Float>()
                    var lane = 0
                    var column = 0
                    while column < lanes {
                        // A multiply and an add, not `addProduct`: that is a fused multiply-add
                        // per lane, a library call on the baseline x86-64 target (no FMA).
                        accumulator += UnsafeRawPointer(base + column).loadUnaligned(as: SIMD16<Float>.self) * queryLanes[lane]
                        lane += 1
                        column += 16
                    }
                    var sum = accumulator.sum()
                    while column < dimensions {
                        sum += base[column] * asked[column]
                        column += 1
                    }
                    scores[row] = sum
                }
            }
        }
        // The best k kept in order as the scores go by (k is small: a search's top_k), not a
        // sort of every row. Ties keep the earlier row first.
        var best: [Int] = []
        best.reserveCapacity(k + 1)
        for row in scores.indices {
            if best.count == k, scores[row] <= scores[best[k - 1]] { continue }
            var at = best.count
            while at > 0, scores[best[at - 1]] < scores[row] { at -= 1 }
            best.insert(row, at: at)
            if best.count > k { best.removeLast() }
        }
        return best.map { ScoredChunk(chunkID: ids[$0], score: Double(scores[$0])) }
    }

    /// Float32 little-endian bytes of a vector: how vectors are stored (bytea).
    public static func pack(_ vector: [Float]) -> Data {
        var data = Data(capacity: vector.count * 4)
        for value in vector { withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        return data
    }

    public static func unpack(_ data: Data) -> [Float]? {
        guard data.count % 4 == 0 else { return nil }
        return data.withUnsafeBytes { raw in
            (0..<(data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
    }
}

/// A chunk as the index holds it, with its vector.
public struct IndexedChunk: Sendable, Equatable {
    public var chunkID: UUID
    public var chunk: Chunk
    public var vector: [Float]

    public init(chunkID: UUID, chunk: Chunk, vector: [Float]) {
        self.chunkID = chunkID
        self.chunk = chunk
        self.vector = vector
    }
}

/// A chunk as a search finds it and an answer cites it.
public struct FoundChunk: Sendable, Equatable {
    public var chunkID: UUID
    public var documentID: UUID
    public var documentVersion: Int
    public var ordinal: Int
    public var headingPath: [String]
    public var start: Int
    public var end: Int
    public var text: String
    public var contentHash: String

    public init(
        chunkID: UUID, documentID: UUID, documentVersion: Int, ordinal: Int, headingPath: [String], start: Int, end: Int, text: String,
        contentHash: String
    ) {
        self.chunkID = chunkID
        self.documentID = documentID
        self.documentVersion = documentVersion
        self.ordinal = ordinal
        self.headingPath = headingPath
        self.start = start
        self.end = end
        self.text = text
        self.contentHash = contentHash
    }
}

/// Nearest chunks of a knowledge base by cosine similarity. The default is an exact scan of the
/// base's vectors kept in memory (`ExactVectorMatrix`); an approximate index, or pgvector where a
/// deployment has it, can take its place.
public protocol VectorIndex: Sendable {
    func nearest(knowledgeBase: UUID, to query: [Float], k: Int) async throws -> [ScoredChunk]
}

/// What the Knowledge module keeps outside the log: documents' bytes by hash, the index of
/// chunks with their text and vectors, and the embedding cache (Postgres in Adapters).
public protocol KnowledgeStorage: VectorIndex {
    /// Stores a document's bytes, then runs `record` (the append that names them), holding the
    /// hash's lock throughout: a removal of the same bytes waits, and then sees the record.
    func storeBlob<T: Sendable>(
        knowledgeBase: UUID, sha256: String, mediaType: String, bytes: Data, record: @escaping @Sendable () async throws -> T
    ) async throws -> T
    func blob(knowledgeBase: UUID, sha256: String) async throws -> Data?
    /// Removes the bytes under the hash's lock if `unused()`, asked under it, says no document
    /// version of the base names them any more.
    func removeBlob(knowledgeBase: UUID, sha256: String, unused: @escaping @Sendable () async throws -> Bool) async throws

    /// Cached vectors of embedded texts, by the texts' sha256.
    func cachedVectors(_ hashes: [String], model: String) async throws -> [String: [Float]]
    func cacheVectors(_ vectors: [String: [Float]], model: String) async throws

    /// Writes a document version's chunks and removes the document's other chunks (of other
    /// versions, or cut with other settings), in
    /// one transaction holding the document's lock, if `current()` (asked under the lock) still
    /// says the version is the document's current one. False, with nothing written, if not.
    func replaceChunks(
        knowledgeBase: UUID, document: UUID, version: Int, model: String, chunks: [IndexedChunk], current: @escaping @Sendable () async throws -> Bool
    ) async throws -> Bool
    /// Removes every chunk of a document, under the document's lock (so no run writes after it).
    func removeChunks(knowledgeBase: UUID, document: UUID) async throws

    /// Chunks matching `query` (Postgres full text, `websearch_to_tsquery`: any input parses), best first.
    func keywordSearch(knowledgeBase: UUID, query: String, k: Int) async throws -> [ScoredChunk]
    func chunks(_ ids: [UUID]) async throws -> [UUID: FoundChunk]
}
