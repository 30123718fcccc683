import Foundation
import Testing

@testable import Commands
import Events

/// The answerer's rules that need no server: citations only of given chunks, and the offline
/// extractive answer.
@Suite struct KnowledgeAnsweringTests {
    static func chunk(_ text: String, ordinal: Int = 0) -> FoundChunk {
        FoundChunk(
            chunkID: UUID(), documentID: UUID(), documentVersion: 1, ordinal: ordinal, headingPath: ["Guide"], start: 0, end: text.unicodeScalars.count,
            text: text, contentHash: "h")
    }

    @Test func markersOutsideTheGivenChunksAreDroppedAndTheRestKeptInOrder() {
        let (text, cited, dropped) = KnowledgeAnswering.citations(in: "Tuesday [2]. Canary for 30 minutes [1, 7]. Made up [9]. Again [2].", given: 3)
        #expect(text == "Tuesday [2]. Canary for 30 minutes [1]. Made up . Again [2].")
        #expect(cited == [2, 1])
        #expect(dropped == ["[1, 7]", "[9]"])
        let none = KnowledgeAnswering.citations(in: "No markers, [x] and [] are text.", given: 2)
        #expect(none.text == "No markers, [x] and [] are text." && none.cited.isEmpty && none.dropped.isEmpty)
        #expect(KnowledgeAnswering.citations(in: "[0] and [3]", given: 2).dropped == ["[0]", "[3]"])
    }

    @Test func theOfflineAnswerQuotesTheSentencesThatShareTheQuestionsWordsAndCitesThem() {
        let chunks = [
            Self.chunk("Deployments run every Tuesday. The captain watches the canary."),
            Self.chunk("Each employee gets twenty-five days of paid vacation a year. Unused vacation days roll over until March."),
        ]
        let (text, cited) = KnowledgeAnswering.extractive(question: "How many vacation days does an employee get?", chunks: chunks)
        #expect(text.hasPrefix(KnowledgeAnswering.offlinePrefix))
        #expect(text.contains("twenty-five days of paid vacation a year. [2]"))
        #expect(!text.contains("Tuesday"))
        #expect(cited == [2])
        let nothing = KnowledgeAnswering.extractive(question: "What about zebras?", chunks: chunks)
        #expect(nothing.text.hasSuffix(KnowledgeAnswering.nothingFound) && nothing.cited.isEmpty)
    }

    @Test func thePromptNumbersTheChunksWithTheirSource() {
        let chunk = Self.chunk("Laptops use full disk encryption.")
        let messages = KnowledgeAnswering.prompt(question: "Encryption?", chunks: [chunk], names: [chunk.documentID: "policy.md"])
        #expect(messages.count == 2)
        #expect(messages[1].content?.contains("[1] (policy.md > Guide)\nLaptops use full disk encryption.") == true)
        #expect(messages[1].content?.hasSuffix("Question: Encryption?") == true)
    }

    @Test func anAnswerIsAskedOnceAndEndsOnce() throws {
        let id = UUID()
        let request = KnowledgeAnswerRequested(answerID: id, knowledgeBaseID: UUID(), ownerID: "o", question: "  Why?  ", topK: 5, requestedAt: Date())
        let events = try KnowledgeAnswerDecider.decide(.request(request), state: .init())
        guard case .requested(let recorded)? = events.first else { Issue.record("no request"); return }
        #expect(recorded.question == "Why?")
        let pending = KnowledgeAnswerDecider.evolve(.init(), events[0])
        #expect(throws: DomainError.self) { try KnowledgeAnswerDecider.decide(.request(request), state: pending) }
        var bad = request
        bad.topK = 50
        #expect(throws: DomainError.self) { try KnowledgeAnswerDecider.decide(.request(bad), state: .init()) }
        let failed = KnowledgeAnswerDecider.evolve(pending, .failed(.init(answerID: id, reason: "r", failedAt: Date())))
        #expect(throws: DomainError.self) { try KnowledgeAnswerDecider.decide(.fail(.init(answerID: id, reason: "again", failedAt: Date())), state: failed) }
    }
}
