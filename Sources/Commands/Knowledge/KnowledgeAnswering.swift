import Events
import Foundation

/// Search over one knowledge base, as the search route and the answerer both use it.
public struct KnowledgeRetriever: Sendable {
    public enum Mode: String, Sendable, CaseIterable {
        case hybrid, vector, keyword
    }

    public let storage: any KnowledgeStorage
    public let embedder: any Embedder

    public init(storage: any KnowledgeStorage, embedder: any Embedder) {
        self.storage = storage
        self.embedder = embedder
    }

    /// The best `k` chunks, best first. Hybrid fuses the keyword and vector rankings, each cut at
    /// 4 × k, by Reciprocal Rank Fusion (k = 60), so neither score scale leaks into the other.
    public func search(_ knowledgeBase: UUID, query: String, k: Int, mode: Mode) async throws -> [(chunk: FoundChunk, score: Double)] {
        let scored: [ScoredChunk]
        switch mode {
        case .keyword:
            scored = try await storage.keywordSearch(knowledgeBase: knowledgeBase, query: query, k: k)
        case .vector:
            scored = try await storage.nearest(knowledgeBase: knowledgeBase, to: try await vector(query), k: k)
        case .hybrid:
            async let keyword = storage.keywordSearch(knowledgeBase: knowledgeBase, query: query, k: k * 4)
            let vector = try await storage.nearest(knowledgeBase: knowledgeBase, to: try await vector(query), k: k * 4)
            scored = ReciprocalRankFusion.fuse([try await keyword.map(\.chunkID), vector.map(\.chunkID)], limit: k)
        }
        let found = try await storage.chunks(scored.map(\.chunkID))
        return scored.compactMap { hit in found[hit.chunkID].map { ($0, hit.score) } }
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
