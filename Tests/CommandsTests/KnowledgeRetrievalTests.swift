import Commands
import Events
import Foundation
import Testing

@Suite struct ChunkerTests {
    /// One token per word, so the limits below are easy to read.
    static let words: @Sendable (Substring) -> Int = { text in max(1, text.split(whereSeparator: \.isWhitespace).count) }

    static let document = """
        # Guide

        Intro paragraph one. It has two sentences.

        ## Install

        Run make bootstrap first. Then run make run.

        Second install paragraph.

        ## Use
        ### Search

        Hybrid search fuses keyword and vector ranks.

        ```
        # not a heading, inside a fence
        code line
        ```
        """

    @Test func sectionsFollowHeadingsAndChunksAreExactRangesOfTheText() {
        let chunker = Chunker(settings: ChunkingSettings(maxTokens: 100, overlapTokens: 0), countTokens: Self.words)
        let chunks = chunker.chunks(of: Self.document)
        #expect(chunks.map(\.headingPath) == [["Guide"], ["Guide", "Install"], ["Guide", "Use", "Search"]])
        #expect(chunks.map(\.ordinal) == [0, 1, 2])
        let scalars = Array(Self.document.unicodeScalars)
        for chunk in chunks {
            #expect(String(String.UnicodeScalarView(scalars[chunk.start..<chunk.end])) == chunk.text)
        }
        #expect(chunks[1].text == "Run make bootstrap first. Then run make run.\n\nSecond install paragraph.")
        #expect(chunks[2].text.hasSuffix("code line\n```"), "a fenced block is one paragraph, its # line no heading")
        #expect(chunks[2].embeddingInput.hasPrefix("Guide > Use > Search\n\n"))
    }

    @Test func aLongParagraphIsCutBySentencesWithOverlapAndNoChunkPassesTheLimit() {
        let sentences = (1...40).map { "Sentence number \($0) has exactly seven words." }
        let text = sentences.joined(separator: " ")
        let chunker = Chunker(settings: ChunkingSettings(maxTokens: 32, overlapTokens: 8), countTokens: Self.words)
        let chunks = chunker.chunks(of: text)
        #expect(chunks.count > 5)
        for chunk in chunks { #expect(chunk.tokens <= 32, "\(chunk.text)") }
        // Each next chunk starts with the previous one's last sentence (7 words ≤ 8 of overlap).
        for (previous, next) in zip(chunks, chunks.dropFirst()) {
            #expect(next.start < previous.end, "overlap")
            #expect(next.start > previous.start, "progress")
        }
        #expect(chunks.first?.start == 0 && chunks.last?.end == text.unicodeScalars.count)
    }

    @Test func aSentenceLongerThanAChunkIsCutByWordsAndAWordLongerByCharacters() {
        let chunker = Chunker(settings: ChunkingSettings(maxTokens: 32, overlapTokens: 0), countTokens: Chunker.estimateTokens)
        let long = String(repeating: "word ", count: 200) + String(repeating: "x", count: 500)
        let chunks = chunker.chunks(of: long)
        for chunk in chunks { #expect(chunk.tokens <= 32) }
        #expect(chunks.map(\.text).joined(separator: " ").replacingOccurrences(of: " ", with: "")
            == long.replacingOccurrences(of: " ", with: ""))
    }

    @Test func idsAreAFunctionOfDocumentVersionSettingsAndOrdinal() {
        let document = UUID()
        let a = Chunk.id(document: document, version: 1, settings: .default, ordinal: 3)
        #expect(a == Chunk.id(document: document, version: 1, settings: .default, ordinal: 3))
        #expect(a != Chunk.id(document: document, version: 2, settings: .default, ordinal: 3))
        #expect(a != Chunk.id(document: document, version: 1, settings: ChunkingSettings(maxTokens: 256, overlapTokens: 32), ordinal: 3))
        #expect(a != Chunk.id(document: document, version: 1, settings: .default, ordinal: 4))
    }

    @Test func settingsOutsideTheirRangesAreRefused() {
        #expect(ChunkingSettings.default.problem == nil)
        #expect(ChunkingSettings(maxTokens: 8, overlapTokens: 0).problem != nil)
        #expect(ChunkingSettings(maxTokens: 512, overlapTokens: 300).problem != nil)
        #expect(ChunkingSettings(maxTokens: 512, overlapTokens: -1).problem != nil)
    }

    @Test func emptyAndBlankTextsHaveNoChunks() {
        let chunker = Chunker(settings: .default)
        #expect(chunker.chunks(of: "").isEmpty)
        #expect(chunker.chunks(of: " \n\n \t\n").isEmpty)
        #expect(chunker.chunks(of: "# Only a heading").isEmpty)
    }
}

@Suite struct RetrievalTests {
    static let ids = (0..<6).map { _ in UUID() }

    @Test func reciprocalRankFusionUsesOneBasedRanksAndCountsAChunkOnce() {
        let (a, b, c, d) = (Self.ids[0], Self.ids[1], Self.ids[2], Self.ids[3])
        let fused = ReciprocalRankFusion.fuse([[a, b, c], [c, a, d, a]])
        #expect(fused.map(\.chunkID) == [a, c, b, d])
        #expect(abs(fused[0].score - (1.0 / 61 + 1.0 / 62)) < 1e-12)
        #expect(abs(fused[1].score - (1.0 / 63 + 1.0 / 61)) < 1e-12)
        #expect(abs(fused[3].score - 1.0 / 63) < 1e-12)
        #expect(ReciprocalRankFusion.fuse([[a, b], [b, a]]).map(\.chunkID) == [a, b], "a tie keeps the first ranking's order")
        #expect(ReciprocalRankFusion.fuse([[a, b, c]], limit: 2).count == 2)
        #expect(ReciprocalRankFusion.fuse([]).isEmpty)
    }

    @Test func theExactScanFindsTheNearestAndMatchesANaiveDotProduct() {
        var generator = SystemRandomNumberGenerator()
        let dimensions = 37  // not a multiple of 16: the tail loop too
        var matrix = ExactVectorMatrix(dimensions: dimensions)
        var vectors: [[Float]] = []
        for index in 0..<200 {
            let vector = VectorMath.normalized((0..<dimensions).map { _ in Float.random(in: -1...1, using: &generator) })
            vectors.append(vector)
            matrix.append(id: UUID(uuid: (UInt8(index), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)), vector: vector)
        }
        let query = vectors[17]
        let found = matrix.nearest(to: query, k: 5)
        #expect(found.count == 5)
        #expect(found[0].chunkID == matrix.ids[17] && abs(found[0].score - 1) < 1e-5)
        let naive = vectors.enumerated().map { ($0.offset, zip($0.element, query).reduce(Float(0)) { $0 + $1.0 * $1.1 }) }
            .sorted { $0.1 > $1.1 }.prefix(5)
        #expect(found.map(\.chunkID) == naive.map { matrix.ids[$0.0] })
        for (got, want) in zip(found, naive) { #expect(abs(got.score - Double(want.1)) < 1e-5) }
        #expect(matrix.nearest(to: query, k: 0).isEmpty && matrix.nearest(to: [1], k: 3).isEmpty)
    }

    /// Two chunks and a query; the whole-chunk ranking puts `diluted` first, its best passage
    /// `answering`.
    final class TwoChunks: KnowledgeStorage {
        let diluted = UUID(), answering = UUID()
        func storeBlob<T: Sendable>(
            knowledgeBase: UUID, sha256: String, mediaType: String, bytes: Data, record: @escaping @Sendable () async throws -> T
        ) async throws -> T { try await record() }
        func blob(knowledgeBase: UUID, sha256: String) async throws -> Data? { nil }
        func removeBlob(knowledgeBase: UUID, sha256: String, unused: @escaping @Sendable () async throws -> Bool) async throws {}
        func cachedVectors(_ hashes: [String], model: String) async throws -> [String: [Float]] { [:] }
        func cacheVectors(_ vectors: [String: [Float]], model: String) async throws {}
        func replaceChunks(
            knowledgeBase: UUID, document: UUID, version: Int, model: String, chunks: [IndexedChunk], current: @escaping @Sendable () async throws -> Bool
        ) async throws -> Bool { false }
        func removeChunks(knowledgeBase: UUID, document: UUID) async throws {}
        func keywordSearch(knowledgeBase: UUID, query: String, k: Int) async throws -> [ScoredChunk] { [] }
        func chunks(_ ids: [UUID]) async throws -> [UUID: FoundChunk] {
            Dictionary(uniqueKeysWithValues: ids.map { id in
                (id, FoundChunk(
                    chunkID: id, documentID: id, documentVersion: 1, ordinal: 0, headingPath: ["Guide"], start: 0, end: 1,
                    text: id == answering ? "answering" : "diluted", contentHash: "h"))
            })
        }
        func nearest(knowledgeBase: UUID, to query: [Float], k: Int) async throws -> [ScoredChunk] {
            Array([ScoredChunk(chunkID: diluted, score: 0.6), ScoredChunk(chunkID: answering, score: 0.5)].prefix(k))
        }
    }

    /// Passages: the answering chunk's second passage is the query itself.
    struct Passages: PassageEmbedder {
        var model: String { "passages (test)" }
        var dimensions: Int { 2 }
        func embed(_ texts: [String]) async throws -> [[Float]] { texts.map { _ in [1, 0] } }
        func passageVectors(_ text: String, context: String, window: Int, stride: Int) -> [[Float]] {
            #expect(context == "Guide" && window == 96 && stride == 48)
            return text == "answering" ? [[0, 1], [1, 0]] : [[0.5, 0.866]]
        }
    }

    @Test func aChunkIsRankedByItsBestPassageWhenTheEmbedderHasPassages() async throws {
        let storage = TwoChunks()
        let rescored = try await KnowledgeRetriever(storage: storage, embedder: Passages()).search(UUID(), query: "q", k: 2, mode: .vector)
        #expect(rescored.map(\.chunk.chunkID) == [storage.answering, storage.diluted])
        // The diluted chunk's passage (0.5) is worse than its whole vector (0.6), which stands.
        #expect(rescored.map(\.score) == [1, 0.6])
        // Without passage scoring, the whole-chunk order stands.
        let whole = try await KnowledgeRetriever(storage: storage, embedder: Passages(), passages: nil).search(UUID(), query: "q", k: 2, mode: .vector)
        #expect(whole.map(\.chunk.chunkID) == [storage.diluted, storage.answering])
        // Hybrid fuses the passage-scored ranking (the keyword ranking here is empty).
        let hybrid = try await KnowledgeRetriever(storage: storage, embedder: Passages()).search(UUID(), query: "q", k: 1, mode: .hybrid)
        #expect(hybrid.map(\.chunk.chunkID) == [storage.answering])
    }

    @Test func vectorsRoundTripThroughTheirBytes() {
        let vector: [Float] = [1, -0.5, 3.25e-8, .greatestFiniteMagnitude]
        #expect(ExactVectorMatrix.unpack(ExactVectorMatrix.pack(vector)) == vector)
        #expect(ExactVectorMatrix.pack(vector).count == 16)
        #expect(ExactVectorMatrix.unpack(Data([1, 2, 3])) == nil)
    }
}
