import Foundation
import Synchronization
import Testing

@testable import Commands

/// The embedder gets the chat model's resilience: a retried server error, a refused request not
/// retried, a malformed reply counted by the breaker, and the breaker failing fast.
@Suite struct ResilientEmbedderTests {
    /// Fails with the scripted errors in turn, then answers.
    final class ScriptedEmbedder: Embedder {
        let script: Mutex<[any Error]>
        let calls = Mutex(0)
        init(_ script: [any Error]) { self.script = Mutex(script) }
        var model: String { "scripted" }
        var dimensions: Int { 2 }
        func embed(_ texts: [String]) async throws -> [[Float]] {
            calls.withLock { $0 += 1 }
            if let error = script.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { throw error }
            return texts.map { _ in [1, 0] }
        }
    }

    static let quick = ResilientLanguageModel.Policy(tries: 3, backoff: [.milliseconds(1)], timeout: .seconds(5))

    @Test func aServerErrorIsTriedAgainAndARefusalIsNot() async throws {
        let flaky = ScriptedEmbedder([LanguageModelError.server(status: 503, message: ""), LanguageModelError.rateLimited(retryAfter: 0)])
        #expect(try await ResilientEmbedder(flaky, policy: Self.quick).embed(["a"]) == [[1, 0]])
        #expect(flaky.calls.withLock { $0 } == 3)
        let refused = ScriptedEmbedder([LanguageModelError.rejected(status: 400, message: "bad model")])
        await #expect(throws: LanguageModelError.rejected(status: 400, message: "bad model")) {
            try await ResilientEmbedder(refused, policy: Self.quick).embed(["a"])
        }
        #expect(refused.calls.withLock { $0 } == 1)
    }

    @Test func malformedRepliesOpenTheBreakerAndItFailsFast() async throws {
        let broken = ScriptedEmbedder(Array(repeating: EmbedderError.malformedReply("1 vector for 2 texts"), count: 3))
        let policy = ResilientLanguageModel.Policy(
            tries: 1, backoff: [.milliseconds(1)], timeout: .seconds(5),
            breaker: .init(failureRateThreshold: 0.5, minimumCalls: 2, windowSeconds: 60, openSeconds: 30))
        let embedder = ResilientEmbedder(broken, policy: policy)
        for _ in 0..<2 {
            await #expect(throws: EmbedderError.malformedReply("1 vector for 2 texts")) { try await embedder.embed(["a", "b"]) }
        }
        #expect(embedder.breakerState != .closed)
        do {
            _ = try await embedder.embed(["a"])
            Issue.record("expected the open circuit to refuse")
        } catch let error as LanguageModelError {
            guard case .circuitOpen = error else { Issue.record("got \(error)"); return }
        }
        #expect(broken.calls.withLock { $0 } == 2)
    }
}
