import Adapters
import Commands
import Foundation
import Testing

/// Knowledge's keyword search on the real Postgres: BM25 over the full-text index, its counts
/// kept by triggers, web-search syntax held where it is used.
@Suite struct KeywordSearchTests {
    static let passages = [
        "Holidays: every employee has twenty-five days of paid leave a year.",
        "Expenses: meals on a business trip are reimbursed up to forty euros a day.",
        "Security: laptops must use full-disk encryption, and the employee reports a lost laptop at once.",
        "Travel: the employee books trains and flights through the travel desk.",
        "Onboarding: a new employee gets a laptop on the first day.",
    ]

    static func index(_ storage: PostgresKnowledgeStorage, base: UUID, document: UUID, _ texts: [String], version: Int = 1) async throws {
        var offset = 0
        let chunks = texts.enumerated().map { ordinal, text in
            defer { offset += text.unicodeScalars.count + 2 }
            let chunk = Chunk(ordinal: ordinal, headingPath: [], start: offset, end: offset + text.unicodeScalars.count, text: text, tokens: text.count / 4)
            return IndexedChunk(
                chunkID: Chunk.id(document: document, version: version, settings: .default, ordinal: ordinal), chunk: chunk, vector: [1, 0])
        }
        _ = try await storage.replaceChunks(knowledgeBase: base, document: document, version: version, model: "test", chunks: chunks) { true }
    }

    static func texts(_ storage: PostgresKnowledgeStorage, _ hits: [ScoredChunk]) async throws -> [String] {
        let found = try await storage.chunks(hits.map(\.chunkID))
        return hits.compactMap { found[$0.chunkID]?.text }
    }

    @Test func aQuestionFindsThePassagesThatHoldAnyOfItsWordsRarestFirst() async throws {
        try await TestServers.withDatabase { database in
            let storage = PostgresKnowledgeStorage(client: database.client, logger: TestServers.logger)
            let base = UUID()
            try await Self.index(storage, base: base, document: UUID(), Self.passages)

            // Not every word is in one passage (AND would find nothing); "reimbursed" is rare and
            // "employee" common, so the expenses passage comes first.
            let question = try await Self.texts(storage, try await storage.keywordSearch(
                knowledgeBase: base, query: "How much does an employee get reimbursed for a meal?", k: 5))
            #expect(question.first?.hasPrefix("Expenses") == true, "\(question)")
            // A word in every passage but one still ranks the passage that says it twice first.
            let laptop = try await Self.texts(storage, try await storage.keywordSearch(knowledgeBase: base, query: "lost laptop", k: 5))
            #expect(laptop.first?.hasPrefix("Security") == true, "\(laptop)")
            #expect(Set(laptop) == Set(Self.passages.filter { $0.contains("laptop") }), "\(laptop)")

            // Web-search syntax is held: a phrase, an exclusion, and any input parses.
            let phrase = try await Self.texts(storage, try await storage.keywordSearch(knowledgeBase: base, query: "\"first day\"", k: 5))
            #expect(phrase.count == 1 && phrase.first?.hasPrefix("Onboarding") == true, "\(phrase)")
            let excluded = try await Self.texts(storage, try await storage.keywordSearch(knowledgeBase: base, query: "laptop -encryption", k: 5))
            #expect(excluded.count == 1 && excluded.first?.hasPrefix("Onboarding") == true, "\(excluded)")
            for odd in ["\"unclosed OR -( & |", "'", "\\", "the and of", ""] {
                _ = try await storage.keywordSearch(knowledgeBase: base, query: odd, k: 5)
            }
            // Another base's passages are never found.
            #expect(try await storage.keywordSearch(knowledgeBase: UUID(), query: "laptop", k: 5).isEmpty)
        }
    }

    @Test func theBasesCountsFollowEveryWriteRetryAndRemoval() async throws {
        try await TestServers.withDatabase { database in
            let storage = PostgresKnowledgeStorage(client: database.client, logger: TestServers.logger)
            let base = UUID(), first = UUID(), second = UUID()
            func counts() async throws -> (Int64, Int64)? {
                try await database.client.query(
                    "SELECT chunks, tokens FROM knowledge_index_generations WHERE knowledge_base_id = \(base)", logger: TestServers.logger
                ).decode((Int64, Int64).self).all().first
            }
            func actual() async throws -> (Int64, Int64)? {
                try await database.client.query(
                    "SELECT count(*), coalesce(sum(tokens), 0)::int8 FROM knowledge_chunks WHERE knowledge_base_id = \(base)", logger: TestServers.logger
                ).decode((Int64, Int64).self).all().first
            }
            try await Self.index(storage, base: base, document: first, Self.passages)
            try await Self.index(storage, base: base, document: first, Self.passages)  // a retried run: the same rows
            try await Self.index(storage, base: base, document: second, Array(Self.passages.prefix(2)))
            var kept = try #require(try await counts()), real = try #require(try await actual())
            #expect(kept == real && kept.0 == 7)
            try await Self.index(storage, base: base, document: first, Array(Self.passages.prefix(3)), version: 2)  // a new version
            try await storage.removeChunks(knowledgeBase: base, document: second)
            kept = try #require(try await counts())
            real = try #require(try await actual())
            #expect(kept == real && kept.0 == 3)
        }
    }
}
