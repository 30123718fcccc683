@testable import Adapters
import Commands
import Foundation
import Testing

/// The offline embedder against the reference implementation. The expected ids and vector
/// prefixes were produced by `tokenizers` 0.23.3 (`Tokenizer.from_file(...).encode(text,
/// add_special_tokens=False)`) and NumPy (the mean of the fp32 rows, divided by its norm) over
/// the wheel's own files: what `WordLlama.embed(text, norm=True)` computes.
@Suite struct WordLlamaEmbedderTests {
    static let embedder: Result<WordLlamaEmbedder, any Error> = Result {
        try WordLlamaEmbedder(directory: URL(fileURLWithPath: try TestServers.env("CHRONICLE_KNOWLEDGE_EMBEDDER_DIR")))
    }

    struct Golden: Sendable, CustomTestStringConvertible {
        let text: String
        let ids: [Int32]
        let first8: [Float]
        var testDescription: String { String(reflecting: text) }
    }

    static let golden: [Golden] = [
        Golden(text: "Hello world", ids: [15043, 3186],
               first8: [0.122179, 0.043054, 0.056709, -0.04641, -0.001543, 0.041537, 0.028808, -0.09002]),
        Golden(text: "The quick brown fox jumps over the lazy dog.",
               ids: [450, 4996, 17354, 1701, 29916, 432, 17204, 975, 278, 17366, 11203, 29889],
               first8: [0.030066, -0.014712, 0.003583, 0.06435, 0.045613, -0.020644, -0.018935, 0.1113]),
        // Runs of spaces merge into "▁▁" tokens across what would be word boundaries.
        Golden(text: "  Leading spaces and   runs of   spaces", ids: [259, 951, 9382, 8162, 322, 259, 6057, 310, 259, 8162],
               first8: [-0.042965, -0.088483, 0.143688, -0.01607, -0.117137, -0.040388, 0.004853, -0.015146]),
        // Characters outside the vocabulary (the emoji) fall back to their UTF-8 bytes.
        Golden(text: "Ünïcödé text: naïve café — 東京 🙂",
               ids: [7189, 29876, 30085, 29883, 9289, 29948, 1426, 29901, 1055, 30085, 345, 274, 28059, 813, 29871, 30591, 30675, 29871, 243, 162, 156, 133],
               first8: [-0.061928, 0.101218, 0.018498, -0.102327, 0.00497, -0.034354, 0.130116, -0.044544]),
        Golden(text: "Event sourcing stores every change as an event.", ids: [6864, 269, 473, 3277, 14422, 1432, 1735, 408, 385, 1741, 29889],
               first8: [0.026556, -0.014178, 0.032315, -0.052165, -0.023263, 0.063811, -0.177401, 0.067148]),
        Golden(text: "tab\tand\nnewline", ids: [4434, 12, 392, 13, 1482, 1220],
               first8: [-0.01518, -0.101839, 0.069003, -0.093958, 0.022004, -0.047385, -0.006054, -0.159518]),
        Golden(text: "x", ids: [921], first8: [0.044362, -0.053632, -0.097756, -0.134184, 0.02695, 0.018021, 0.092348, -0.021423]),
        Golden(text: "", ids: [], first8: [0, 0, 0, 0, 0, 0, 0, 0]),
    ]

    @Test(arguments: golden) func tokensAndVectorsMatchTheReference(_ case: Golden) throws {
        let embedder = try Self.embedder.get()
        #expect(embedder.tokenizer.encode(`case`.text) == `case`.ids)
        let vector = embedder.vector(for: `case`.text)
        #expect(vector.count == 256)
        for (got, want) in zip(vector.prefix(8), `case`.first8) {
            #expect(abs(got - want) < 2e-5, "\(Array(vector.prefix(8))) against \(`case`.first8)")
        }
        if !`case`.ids.isEmpty {
            #expect(abs(vector.reduce(0) { $0 + $1 * $1 } - 1) < 1e-4)
        }
    }

    /// Real semantics: a paraphrase is far nearer than an unrelated sentence (the reference
    /// gives 0.427 against 0.0035).
    @Test func aParaphraseIsNearerThanAnUnrelatedSentence() async throws {
        let embedder = try Self.embedder.get()
        let vectors = try await embedder.embed(["The cat sat on the mat", "A kitten was sitting on the rug", "Quarterly revenue grew by ten percent"])
        func dot(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
        #expect(abs(dot(vectors[0], vectors[1]) - 0.4268) < 1e-3)
        #expect(abs(dot(vectors[0], vectors[2]) - 0.0035) < 1e-3)
        #expect(embedder.model == "wordllama-l2-supercat-256 (offline)")
    }

    /// A chunk's best passage: a sentence that answers a question is diluted in the mean of a long
    /// chunk, and found again in the passage that holds it.
    @Test func aPassageHoldingTheAnswerIsNearerThanTheWholeChunk() async throws {
        let embedder = try Self.embedder.get()
        func dot(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
        let filler = "Quarterly revenue grew by ten percent while operating costs stayed flat across every region."
        let text = (Array(repeating: filler, count: 6) + ["The cat sat on the mat."] + Array(repeating: filler, count: 6)).joined(separator: " ")
        let query = try await embedder.embed(["A kitten was sitting on the rug"])[0]
        let whole = embedder.vector(for: text)
        let passages = embedder.passageVectors(text, context: "", window: 24, stride: 12)
        let tokens = embedder.tokenizer.encode(text).count
        // One passage every 12 tokens, and one more that ends with the text.
        #expect(passages.count == (tokens - 24 + 11) / 12 + 1)
        #expect(passages.allSatisfy { abs($0.reduce(0) { $0 + $1 * $1 } - 1) < 1e-4 })
        let best = passages.map { dot($0, query) }.max() ?? 0
        #expect(best > dot(whole, query) + 0.1, "best passage \(best), whole chunk \(dot(whole, query))")
        // A text no longer than the window is one passage: the text's own vector.
        let short = embedder.passageVectors("The cat sat on the mat", context: "", window: 64, stride: 32)
        #expect(short.count == 1 && zip(short[0], embedder.vector(for: "The cat sat on the mat")).allSatisfy { abs($0 - $1) < 1e-6 })
        // The heading path counts in every passage.
        let headed = embedder.passageVectors("The cat sat on the mat", context: "Quarterly revenue", window: 64, stride: 32)
        #expect(dot(headed[0], short[0]) < 0.99)
        #expect(embedder.passageVectors("", context: "heading", window: 64, stride: 32).isEmpty)
    }

    /// Words are encoded alone and kept: the ids are those of the whole text merged at once, for
    /// every golden text and for a long real one (this repository's README and its architecture
    /// notes, prose, code, tables and all), asked twice so the second pass is served from the kept words.
    @Test func encodingWordByWordGivesTheIdsOfTheWholeText() throws {
        let embedder = try Self.embedder.get()
        #expect(embedder.tokenizer.wordsAreIndependent)
        let root = TestServers.root
        let long = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
            + String(contentsOf: root.appendingPathComponent("docs/ARCHITECTURE.md"), encoding: .utf8)
        for text in Self.golden.map(\.text) + [long, "  two  spaces ▁literal▁ marks\u{2581}\u{2581}and tabs\t here", " ", "a "] {
            for _ in 0..<2 { #expect(embedder.tokenizer.encode(text) == embedder.tokenizer.encodeWhole(text), "\(text.prefix(60))") }
        }
    }

    @Test func aMissingModelFolderSaysHowToInstallIt() {
        #expect {
            _ = try WordLlamaEmbedder(directory: URL(fileURLWithPath: "/nonexistent/wordllama"))
        } throws: { error in
            "\(error)".contains("make bootstrap")
        }
    }
}
