import Events
import Foundation

/// Search over one knowledge base, as the search route and the answerer both use it.
public struct KnowledgeRetriever: Sendable {
    public enum Mode: String, Sendable, CaseIterable {
        case hybrid, vector, keyword
    }

    /// How the vector ranking is refined when the embedder is a `PassageEmbedder`: the nearest
    /// `pool` chunks by their whole-chunk vectors are scored again by their best passage of
    /// `window` tokens (one every `stride`), each passage with its chunk's heading path.
    public struct PassageScoring: Sendable, Equatable {
        public var window: Int
        public var stride: Int
        /// Chunks scored again: at least this many, and at least the ranking's own length.
        public var pool: Int

        public init(window: Int, stride: Int, pool: Int) {
            self.window = max(1, window)
            self.stride = max(1, stride)
            self.pool = max(1, pool)
        }

        /// Chosen on half of the labelled questions (odd lines), among windows of 32 to 160
        /// tokens, and measured on the other half (bench/knowledge-eval/README.md).
        public static let `default` = PassageScoring(window: 96, stride: 48, pool: 100)
    }

    public let storage: any KnowledgeStorage
    public let embedder: any Embedder
    public let passages: PassageScoring?

    public init(storage: any KnowledgeStorage, embedder: any Embedder, passages: PassageScoring? = .default) {
        self.storage = storage
        self.embedder = embedder
        self.passages = passages
    }

    /// The best `k` chunks, best first. Hybrid fuses the keyword and vector rankings, each cut at
    /// 4 × k, by Reciprocal Rank Fusion (k = 60), so neither score scale leaks into the other.
    public func search(_ knowledgeBase: UUID, query: String, k: Int, mode: Mode) async throws -> [(chunk: FoundChunk, score: Double)] {
        var found: [UUID: FoundChunk] = [:]
        let scored: [ScoredChunk]
        switch mode {
        case .keyword:
            scored = try await storage.keywordSearch(knowledgeBase: knowledgeBase, query: query, k: k)
        case .vector:
            scored = try await nearest(knowledgeBase, query: query, k: k, found: &found)
        case .hybrid:
            async let keyword = storage.keywordSearch(knowledgeBase: knowledgeBase, query: query, k: k * 4)
            let vector = try await nearest(knowledgeBase, query: query, k: k * 4, found: &found)
            scored = ReciprocalRankFusion.fuse([try await keyword.map(\.chunkID), vector.map(\.chunkID)], limit: k)
        }
        let missing = scored.map(\.chunkID).filter { found[$0] == nil }
        if !missing.isEmpty { found.merge(try await storage.chunks(missing)) { kept, _ in kept } }
        return scored.compactMap { hit in found[hit.chunkID].map { ($0, hit.score) } }
    }

    /// The vector ranking: the nearest chunks by cosine, then, with a passage embedder, the pool
    /// scored again by each chunk's best passage (or its whole vector, if that is better). The
    /// chunks fetched to do it are left in `found`.
    func nearest(_ knowledgeBase: UUID, query: String, k: Int, found: inout [UUID: FoundChunk]) async throws -> [ScoredChunk] {
        let asked = try await vector(query)
        guard let passages, let embedder = embedder as? any PassageEmbedder else {
            return try await storage.nearest(knowledgeBase: knowledgeBase, to: asked, k: k)
        }
        let pool = try await storage.nearest(knowledgeBase: knowledgeBase, to: asked, k: max(k, passages.pool))
        found = try await storage.chunks(pool.map(\.chunkID))
        let rescored = pool.map { hit -> ScoredChunk in
            guard let chunk = found[hit.chunkID] else { return hit }
            let context = chunk.headingPath.joined(separator: " > ")
            var best = hit.score
            for passage in embedder.passageVectors(chunk.text, context: context, window: passages.window, stride: passages.stride) {
                best = max(best, Double(zip(passage, asked).reduce(Float(0)) { $0 + $1.0 * $1.1 }))
            }
            return ScoredChunk(chunkID: hit.chunkID, score: best)
        }
        // Stable: equal scores keep the cosine order.
        return Array(rescored.enumerated().sorted { $0.element.score != $1.element.score ? $0.element.score > $1.element.score : $0.offset < $1.offset }
            .map(\.element).prefix(k))
    }

    func vector(_ query: String) async throws -> [Float] {
        guard let vector = try await embedder.embed([query]).first else { throw EmbedderError.malformedReply("no vector for the query") }
        return vector
    }
}

/// Answers from retrieved chunks: the prompt that numbers them, the check that a model's answer
/// cites only those numbers, and the offline answerer, which quotes the best sentences.
public enum KnowledgeAnswering {
    /// The offline answerer's name, as recorded in every answer it gives.
    public static let offlineModel = "extractive (offline)"
    public static let offlinePrefix = "Offline answer (extractive, no language model):"
    public static let nothingFound = "The knowledge base holds no passage that answers this."

    public static func prompt(question: String, chunks: [FoundChunk], names: [UUID: String]) -> [ChatMessage] {
        var passages = ""
        for (index, chunk) in chunks.enumerated() {
            let source = ([names[chunk.documentID] ?? "document"] + chunk.headingPath).joined(separator: " > ")
            passages += "[\(index + 1)] (\(source))\n\(chunk.text)\n\n"
        }
        return [
            ChatMessage(role: .system, content: """
                Answer the question using only the numbered passages. After each claim, cite the passages it rests on by \
                their numbers in square brackets, like [1] or [2, 3]. Cite no other number. If the passages do not hold \
                the answer, say so.
                """),
            ChatMessage(role: .user, content: "Passages:\n\n\(passages)Question: \(question)"),
        ]
    }

    /// The markers of an answer: the given numbers it cites (in order of first use), and every
    /// marker that names a number outside `1...given`, which is taken out of the text.
    public static func citations(in answer: String, given: Int) -> (text: String, cited: [Int], dropped: [String]) {
        guard let pattern = try? NSRegularExpression(pattern: #"\[\s*(\d{1,4}(?:\s*,\s*\d{1,4})*)\s*\]"#) else { return (answer, [], []) }
        var text = ""
        var cited: [Int] = []
        var dropped: [String] = []
        var cursor = answer.startIndex
        let whole = NSRange(answer.startIndex..., in: answer)
        for match in pattern.matches(in: answer, range: whole) {
            guard let range = Range(match.range, in: answer), let inner = Range(match.range(at: 1), in: answer) else { continue }
            text += answer[cursor..<range.lowerBound]
            cursor = range.upperBound
            let numbers = answer[inner].split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            let kept = numbers.filter { (1...given).contains($0) }
            if kept.count < numbers.count { dropped.append(String(answer[range])) }
            if !kept.isEmpty { text += "[\(kept.map(String.init).joined(separator: ", "))]" }
            for number in kept where !cited.contains(number) { cited.append(number) }
        }
        text += answer[cursor...]
        return (text, cited, dropped)
    }

    static let stopWords: Set<String> = [
        "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "get", "has", "have", "how", "i", "in", "is",
        "it", "its", "many", "much", "of", "on", "or", "should", "that", "the", "their", "there", "this", "to", "was", "we", "what", "when",
        "where", "which", "who", "why", "will", "with", "you", "your",
    ]

    /// Lower-cased words, stop words dropped, each cut to its first five letters (a crude stem:
    /// "encrypted" meets "encryption").
    static func terms(_ text: String) -> [String] {
        text.lowercased().split(whereSeparator: { !$0.isLetter && !$0.isNumber }).map(String.init)
            .filter { !stopWords.contains($0) }.map { String($0.prefix(5)) }
    }

    /// Sentences of a text: ends at `.`, `!` or `?` before a space or line break, and at blank lines.
    static func sentences(_ text: String) -> [String] {
        var result: [String] = []
        var current = ""
        let characters = Array(text)
        for (index, character) in characters.enumerated() {
            current.append(character)
            let next = index + 1 < characters.count ? characters[index + 1] : " "
            if ".!?".contains(character) && next.isWhitespace || character == "\n" && next == "\n" {
                let sentence = current.trimmingCharacters(in: .whitespacesAndNewlines)
                if !sentence.isEmpty { result.append(sentence) }
                current = ""
            }
        }
        let last = current.trimmingCharacters(in: .whitespacesAndNewlines)
        if !last.isEmpty { result.append(last) }
        return result
    }

    /// The offline answer: up to three sentences of the chunks that share the most of the
    /// question's words (ties to the better-ranked chunk), each cited, in the chunks' order.
    public static func extractive(question: String, chunks: [FoundChunk]) -> (text: String, cited: [Int]) {
        let wanted = Set(terms(question))
        var candidates: [(chunk: Int, position: Int, score: Double, sentence: String)] = []
        for (index, chunk) in chunks.enumerated() {
            for (position, sentence) in sentences(chunk.text).enumerated() where !sentence.hasPrefix("#") {
                let words = terms(sentence)
                let shared = Set(words).intersection(wanted).count
                guard shared > 0 else { continue }
                let score = Double(shared) / Double(max(wanted.count, 1)) - Double(index) * 0.01
                candidates.append((index, position, score, sentence.replacingOccurrences(of: "\n", with: " ")))
            }
        }
        let best = candidates.sorted { $0.score != $1.score ? $0.score > $1.score : ($0.chunk, $0.position) < ($1.chunk, $1.position) }.prefix(3)
            .sorted { ($0.chunk, $0.position) < ($1.chunk, $1.position) }
        guard !best.isEmpty else { return ("\(offlinePrefix) \(nothingFound)", []) }
        var cited: [Int] = []
        let text = best.map { candidate -> String in
            if !cited.contains(candidate.chunk + 1) { cited.append(candidate.chunk + 1) }
            return "\(candidate.sentence) [\(candidate.chunk + 1)]"
        }.joined(separator: " ")
        return ("\(offlinePrefix) \(text)", cited)
    }

    /// A chunk as an answer records it.
    public static func reference(_ chunk: FoundChunk, marker: Int) -> KnowledgeChunkReference {
        KnowledgeChunkReference(
            marker: marker, chunkID: chunk.chunkID, documentID: chunk.documentID, documentVersion: chunk.documentVersion, start: chunk.start,
            end: chunk.end, contentHash: chunk.contentHash)
    }
}
