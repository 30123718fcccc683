import Commands
import Crypto
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// The Knowledge module's storage in Postgres (migration 0010): blobs, chunks with a generated
/// tsvector, the embedding cache, and an exact vector index kept in memory per knowledge base,
/// reloaded when the base's index generation moved.
public final class PostgresKnowledgeStorage: KnowledgeStorage {
    let client: PostgresClient
    let logger: Logger
    /// Each base's vectors as of a generation of its index, with when it was last searched.
    private let matrices = Mutex<[UUID: (generation: Int64, matrix: ExactVectorMatrix, used: ContinuousClock.Instant)]>([:])
    /// The most bytes of vectors kept in memory; past it the least recently searched bases are
    /// dropped (and read again when searched).
    let memoryLimit: Int

    public init(client: PostgresClient, memoryLimit: Int = 512 << 20, logger: Logger) {
        self.client = client
        self.memoryLimit = memoryLimit
        self.logger = logger
    }

    /// One transaction; the closure's own error comes out as it was thrown (`withTransaction`
    /// wraps it, and a domain refusal must reach the API as itself, not as a 500).
    func transaction<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await client.withTransaction(logger: logger) { connection in try await body(connection) }
        } catch let error as PostgresTransactionError {
            throw error.closureError ?? error.beginError ?? error
        }
    }

    // MARK: Blobs

    public func storeBlob<T: Sendable>(
        knowledgeBase: UUID, sha256: String, mediaType: String, bytes: Data, record: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await transaction { connection in
            try await Self.lock("knowledge-blob:\(knowledgeBase.uuidString.lowercased()):\(sha256)", on: connection, logger: logger)
            // The row is written on its own (committed at once), not in the lock's transaction:
            // a transaction holding a transaction id while the append runs would hold back every
            // follower of the log's safe order. The lock alone takes no transaction id.
            try await client.query("""
                INSERT INTO knowledge_blobs (knowledge_base_id, sha256, media_type, bytes) VALUES (\(knowledgeBase), \(sha256), \(mediaType), \(bytes))
                ON CONFLICT (knowledge_base_id, sha256) DO NOTHING
                """, logger: logger)
            return try await record()
        }
    }

    public func blob(knowledgeBase: UUID, sha256: String) async throws -> Data? {
        let rows = try await client.query(
            "SELECT bytes FROM knowledge_blobs WHERE knowledge_base_id = \(knowledgeBase) AND sha256 = \(sha256)", logger: logger)
        for try await bytes in rows.decode(Data.self) { return bytes }
        return nil
    }

    public func removeBlob(knowledgeBase: UUID, sha256: String, unused: @escaping @Sendable () async throws -> Bool) async throws {
        try await transaction { connection in
            try await Self.lock("knowledge-blob:\(knowledgeBase.uuidString.lowercased()):\(sha256)", on: connection, logger: logger)
            guard try await unused() else { return }
            try await connection.query(
                "DELETE FROM knowledge_blobs WHERE knowledge_base_id = \(knowledgeBase) AND sha256 = \(sha256)", logger: logger)
        }
    }

    // MARK: The embedding cache

    public func cachedVectors(_ hashes: [String], model: String) async throws -> [String: [Float]] {
        guard !hashes.isEmpty else { return [:] }
        var found: [String: [Float]] = [:]
        let rows = try await client.query(
            "SELECT content_hash, vector FROM knowledge_embedding_cache WHERE model = \(model) AND content_hash = ANY(\(hashes))", logger: logger)
        for try await (hash, data) in rows.decode((String, Data).self) {
            if let vector = ExactVectorMatrix.unpack(data) { found[hash] = vector }
        }
        return found
    }

    public func cacheVectors(_ vectors: [String: [Float]], model: String) async throws {
        guard !vectors.isEmpty else { return }
        let hashes = Array(vectors.keys)
        let packed = hashes.map { Self.hex(ExactVectorMatrix.pack(vectors[$0]!)) }
        try await client.query("""
            INSERT INTO knowledge_embedding_cache (content_hash, model, vector)
            SELECT h, \(model), decode(v, 'hex') FROM unnest(\(hashes)::text[], \(packed)::text[]) AS t(h, v)
            ON CONFLICT (content_hash, model) DO NOTHING
            """, logger: logger)
    }

    // MARK: Chunks

    public func replaceChunks(
        knowledgeBase: UUID, document: UUID, version: Int, model: String, chunks: [IndexedChunk], current: @escaping @Sendable () async throws -> Bool
    ) async throws -> Bool {
        try await transaction { connection in
            try await Self.lock(Self.documentKey(document), on: connection, logger: logger)
            guard try await current() else { return false }
            // Every other chunk of the document goes: other versions', and this version's cut
            // with other settings.
            let kept = chunks.map(\.chunkID)
            try await connection.query(
                "DELETE FROM knowledge_chunks WHERE knowledge_base_id = \(knowledgeBase) AND document_id = \(document) AND chunk_id <> ALL(\(kept))",
                logger: logger)
            // Rows go in as parallel arrays (one statement per 500 chunks); a row already there
            // (a retried run) is the same row, so it stays.
            for start in stride(from: 0, to: chunks.count, by: 500) {
                let slice = chunks[start..<min(start + 500, chunks.count)]
                let ids = slice.map(\.chunkID)
                let ordinals = slice.map(\.chunk.ordinal)
                let paths = slice.map { $0.chunk.headingPath.joined(separator: "\u{1F}") }
                let starts = slice.map(\.chunk.start)
                let ends = slice.map(\.chunk.end)
                let bodies = slice.map(\.chunk.text)
                let hashes = slice.map(\.chunk.contentHash)
                let tokens = slice.map(\.chunk.tokens)
                let vectors = slice.map { Self.hex(ExactVectorMatrix.pack($0.vector)) }
                try await connection.query("""
                    INSERT INTO knowledge_chunks (chunk_id, knowledge_base_id, document_id, document_version, ordinal, heading_path, heading_text,
                        start_offset, end_offset, body, content_hash, tokens, model, vector)
                    SELECT id, \(knowledgeBase), \(document), \(version), ordinal,
                        CASE WHEN path = '' THEN '{}'::text[] ELSE string_to_array(path, E'\\x1f') END, replace(path, E'\\x1f', ' '),
                        s, e, body, hash, tokens, \(model), decode(v, 'hex')
                    FROM unnest(\(ids)::uuid[], \(ordinals)::integer[], \(paths)::text[], \(starts)::integer[], \(ends)::integer[], \(bodies)::text[],
                        \(hashes)::text[], \(tokens)::integer[], \(vectors)::text[]) AS t(id, ordinal, path, s, e, body, hash, tokens, v)
                    ON CONFLICT (chunk_id) DO NOTHING
                    """, logger: logger)
            }
            try await Self.bump(knowledgeBase, on: connection, logger: logger)
            return true
        }
    }

    public func removeChunks(knowledgeBase: UUID, document: UUID) async throws {
        try await transaction { connection in
            try await Self.lock(Self.documentKey(document), on: connection, logger: logger)
            try await connection.query(
                "DELETE FROM knowledge_chunks WHERE knowledge_base_id = \(knowledgeBase) AND document_id = \(document)", logger: logger)
            try await Self.bump(knowledgeBase, on: connection, logger: logger)
        }
    }

    /// A lock held to the end of the transaction: a run's write and a deletion's removal of one
    /// document never interleave, nor do an upload and a removal of the same bytes.
    static func lock(_ key: String, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("SELECT pg_advisory_xact_lock(hashtextextended(\(key), 0))", logger: logger)
    }

    static func documentKey(_ document: UUID) -> String { "knowledge-document:\(document.uuidString.lowercased())" }

    static func bump(_ knowledgeBase: UUID, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("""
            INSERT INTO knowledge_index_generations (knowledge_base_id, generation) VALUES (\(knowledgeBase), 1)
            ON CONFLICT (knowledge_base_id) DO UPDATE SET generation = knowledge_index_generations.generation + 1
            """, logger: logger)
    }

    // MARK: Search

    /// BM25 over Postgres full text. The query's words (stemmed, stop words dropped, as the
    /// chunks' `tsvector`) are OR'ed, so a question finds the chunks that hold any of its words,
    /// and each chunk is scored by BM25 (k1 = 1.2, b = 0.75): each word weighs by its rarity in the
    /// base (its document frequency, counted through the GIN index), by its count in the chunk and
    /// against the chunk's length (the base's chunk count and token total are kept by triggers,
    /// migration 0011). ts_rank has no notion of rarity, and websearch_to_tsquery's AND found
    /// nothing for most questions: on the Python-docs evaluation (`make bench`) recall@10 went from
    /// 0.38 (AND, ts_rank_cd) to 0.98.
    ///
    /// Bounds on the work a common word causes:
    /// - a word's count stops at a quarter of the base's chunks (at 1,000 in a smaller base, where
    ///   every count is cheap and exact); a word past it is common, and its weight is taken at that
    ///   count (a little above its true weight, and below any rarer word's);
    /// - a common word scores but brings in no candidates of its own, unless the query has no
    ///   rarer word;
    /// - candidates are cut to the best 10 × k (at least 200) by `ts_rank` before BM25 scores them.
    ///
    /// A query that uses web-search syntax (a quoted phrase, `-word`, `or`) is also held to it,
    /// through websearch_to_tsquery, which parses any input.
    public func keywordSearch(knowledgeBase: UUID, query: String, k: Int) async throws -> [ScoredChunk] {
        let strict = Self.usesSearchSyntax(query)
        let candidates = max(10 * k, 200)
        // Each lexeme quoted for tsquery's input (chr(92) is a backslash).
        let rows = try await client.query("""
            WITH terms AS (
                SELECT DISTINCT lexeme, '''' || replace(replace(lexeme, chr(92), chr(92) || chr(92)), '''', '''''') || '''' AS quoted
                FROM unnest(tsvector_to_array(to_tsvector('english'::regconfig, \(query)))) AS lexeme
            ), stats AS (
                SELECT chunks::float8 AS n, greatest(tokens::float8 / greatest(chunks, 1), 1) AS average, greatest(chunks / 4, 1000) + 1 AS cap
                FROM knowledge_index_generations WHERE knowledge_base_id = \(knowledgeBase)
            ), frequencies AS MATERIALIZED (
                SELECT t.lexeme, t.quoted, (SELECT count(*) FROM (SELECT FROM knowledge_chunks c
                    WHERE c.knowledge_base_id = \(knowledgeBase) AND c.search @@ t.quoted::tsquery LIMIT s.cap) AS found)::float8 AS df
                FROM terms t, stats s
            ), weights AS MATERIALIZED (
                SELECT f.lexeme, f.quoted, f.df < s.cap AS selective, ln(1 + (s.n - f.df + 0.5) / (f.df + 0.5)) AS idf
                FROM frequencies f, stats s WHERE f.df > 0
            ), matching AS (
                SELECT string_agg(quoted, ' | ')::tsquery AS q FROM weights
                WHERE selective OR NOT EXISTS (SELECT 1 FROM weights WHERE selective)
            ), candidates AS (
                SELECT c.chunk_id, c.search, c.tokens FROM matching m, knowledge_chunks c
                WHERE c.knowledge_base_id = \(knowledgeBase) AND c.search @@ m.q
                  AND (NOT \(strict) OR c.search @@ websearch_to_tsquery('english'::regconfig, \(query)))
                ORDER BY ts_rank(c.search, m.q) DESC LIMIT \(candidates)
            )
            SELECT c.chunk_id, score.value FROM stats s, candidates c, LATERAL (
                SELECT sum(w.idf * cardinality(v.positions) * 2.2 / (cardinality(v.positions) + 1.2 * (0.25 + 0.75 * c.tokens / s.average)))::float8 AS value
                FROM unnest(c.search) AS v JOIN weights w ON w.lexeme = v.lexeme
            ) AS score
            ORDER BY 2 DESC, c.chunk_id LIMIT \(k)
            """, logger: logger)
        var found: [ScoredChunk] = []
        for try await (id, score) in rows.decode((UUID, Double).self) { found.append(ScoredChunk(chunkID: id, score: score)) }
        return found
    }

    /// Whether `query` uses web-search syntax: a quoted phrase, an excluded `-word`, or `or`.
    static func usesSearchSyntax(_ query: String) -> Bool {
        query.contains("\"") || query.split(whereSeparator: \.isWhitespace).contains { ($0.count > 1 && $0.hasPrefix("-")) || $0.lowercased() == "or" }
    }

    public func nearest(knowledgeBase: UUID, to query: [Float], k: Int) async throws -> [ScoredChunk] {
        try await matrix(knowledgeBase).nearest(to: query, k: k)
    }

    /// The base's vectors, from memory while its generation has not moved.
    func matrix(_ knowledgeBase: UUID) async throws -> ExactVectorMatrix {
        var generation: Int64 = 0
        for try await value in try await client.query(
            "SELECT generation FROM knowledge_index_generations WHERE knowledge_base_id = \(knowledgeBase)", logger: logger
        ).decode(Int64.self) { generation = value }
        let kept = matrices.withLock { kept -> ExactVectorMatrix? in
            guard let entry = kept[knowledgeBase], entry.generation == generation else { return nil }
            kept[knowledgeBase]?.used = .now
            return entry.matrix
        }
        if let kept { return kept }
        var matrix: ExactVectorMatrix?
        let rows = try await client.query(
            "SELECT chunk_id, vector FROM knowledge_chunks WHERE knowledge_base_id = \(knowledgeBase) ORDER BY document_id, ordinal", logger: logger)
        for try await (id, data) in rows.decode((UUID, Data).self) {
            guard let vector = ExactVectorMatrix.unpack(data) else { continue }
            if matrix == nil { matrix = ExactVectorMatrix(dimensions: vector.count) }
            if vector.count == matrix?.dimensions { matrix?.append(id: id, vector: vector) }
        }
        let loaded = matrix ?? ExactVectorMatrix(dimensions: 0)
        let limit = memoryLimit
        matrices.withLock { kept in
            kept[knowledgeBase] = (generation, loaded, .now)
            var total = kept.values.reduce(0) { $0 + $1.matrix.bytes }
            for (id, entry) in kept.sorted(by: { $0.value.used < $1.value.used }) where total > limit && id != knowledgeBase {
                kept[id] = nil
                total -= entry.matrix.bytes
            }
        }
        return loaded
    }

    public func chunks(_ ids: [UUID]) async throws -> [UUID: FoundChunk] {
        guard !ids.isEmpty else { return [:] }
        let rows = try await client.query("""
            SELECT chunk_id, document_id, document_version, ordinal, array_to_string(heading_path, E'\\x1f'), start_offset, end_offset, body, content_hash
            FROM knowledge_chunks WHERE chunk_id = ANY(\(ids))
            """, logger: logger)
        var found: [UUID: FoundChunk] = [:]
        for try await (id, document, version, ordinal, path, start, end, body, hash) in rows.decode(
            (UUID, UUID, Int, Int, String, Int, Int, String, String).self)
        {
            found[id] = FoundChunk(
                chunkID: id, documentID: document, documentVersion: version, ordinal: ordinal,
                headingPath: path.isEmpty ? [] : path.components(separatedBy: "\u{1F}"), start: start, end: end, text: body, contentHash: hash)
        }
        return found
    }

    static func hex(_ data: Data) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var bytes = [UInt8]()
        bytes.reserveCapacity(data.count * 2)
        for byte in data {
            bytes.append(digits[Int(byte >> 4)])
            bytes.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
