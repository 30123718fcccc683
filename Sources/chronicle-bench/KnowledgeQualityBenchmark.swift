import Adapters
import CLISupport
import Commands
import Events
import Foundation
import Logging

/// Retrieval quality on a real corpus: the Python 3.11 library reference (Debian's
/// python3.11-doc, one HTML page a document) indexed as the worker indexes (extraction, the
/// default chunker, the offline embedder, Postgres), and the labelled questions of
/// `bench/knowledge-eval/python-3.11-library.jsonl` asked in each mode. Beside them, bm25s over
/// the same chunks and questions. A question's relevant pages are its labels; a ranking of chunks
/// becomes a ranking of pages by each page's best chunk, and recall@10 and nDCG@10 (binary gains)
/// are taken over the first ten pages. Each mode's search latency (the whole retriever: query
/// embedding, Postgres, passage scoring, fusion, chunk fetch; 50 chunks) is reported beside its
/// figures. Every figure is given over all questions and over the held-out half (`held_out_*`).
struct KnowledgeQualityBenchmark {
    let database: ChronicleDatabase
    let report: BenchReport
    let logger: Logger
    /// Chunks retrieved per question before they are folded into pages.
    let depth = 50

    struct Question: Decodable {
        var question: String
        var relevant: [String]
    }

    static var corpus: String {
        ProcessInfo.processInfo.environment["CHRONICLE_KNOWLEDGE_EVAL_CORPUS"] ?? "/usr/share/doc/python3.11/html/library"
    }
    static var questionsFile: String {
        ProcessInfo.processInfo.environment["CHRONICLE_KNOWLEDGE_EVAL_QUESTIONS"]
            ?? FileManager.default.currentDirectoryPath + "/bench/knowledge-eval/python-3.11-library.jsonl"
    }

    func run() async throws {
        guard let pages = try? FileManager.default.contentsOfDirectory(atPath: Self.corpus).filter({ $0.hasSuffix(".html") }).sorted(), !pages.isEmpty
        else { throw CLIError("no corpus at \(Self.corpus): install Debian's python3-doc (make bootstrap does)") }
        let questions = try String(contentsOfFile: Self.questionsFile, encoding: .utf8).split(separator: "\n")
            .map { try JSONDecoder().decode(Question.self, from: Data($0.utf8)) }
        let directory = ProcessInfo.processInfo.environment["CHRONICLE_KNOWLEDGE_EMBEDDER_DIR"]
            ?? FileManager.default.currentDirectoryPath + "/.chronicle/" + WordLlamaEmbedder.defaultDirectoryName
        let embedder = try WordLlamaEmbedder(directory: URL(fileURLWithPath: directory))
        let storage = PostgresKnowledgeStorage(client: database.client, logger: logger)
        let base = UUID()

        // Index every page as the worker would (the embedder sees the heading path and the text),
        // and keep each chunk's searchable text and page for bm25s.
        var pageOf: [UUID: String] = [:]
        var texts: [(page: String, text: String)] = []
        let chunker = Chunker(settings: .default)
        let started = ContinuousClock.now
        for page in pages {
            let html = try Data(contentsOf: URL(fileURLWithPath: Self.corpus + "/" + page))
            let text = try await TextExtraction().text(of: html, mediaType: "text/html")
            let document = DeterministicID.v5(namespace: DeterministicID.eventNamespace, name: "bench-eval/\(page)")
            pageOf[document] = page
            let chunks = chunker.chunks(of: text)
            guard !chunks.isEmpty else { continue }
            var vectors: [[Float]] = []
            for batch in stride(from: 0, to: chunks.count, by: 64) {
                vectors += try await embedder.embed(chunks[batch..<min(batch + 64, chunks.count)].map(\.embeddingInput))
            }
            let indexed = zip(chunks, vectors).map { chunk, vector in
                IndexedChunk(chunkID: Chunk.id(document: document, version: 1, settings: .default, ordinal: chunk.ordinal), chunk: chunk, vector: vector)
            }
            _ = try await storage.replaceChunks(knowledgeBase: base, document: document, version: 1, model: embedder.model, chunks: indexed) { true }
            // What the keyword index holds: the heading path and the text.
            texts += chunks.map { (page, ($0.headingPath + [$0.text]).joined(separator: " ")) }
        }
        let indexing = KnowledgeBenchmark.seconds(ContinuousClock.now - started)
        try await database.client.query("VACUUM ANALYZE knowledge_chunks", logger: logger)

        // Each mode's pages for each question.
        let retriever = KnowledgeRetriever(storage: storage, embedder: embedder)
        var rankings: [String: [[String]]] = [:]
        var latencies: [String: [Double]] = [:]
        for mode in KnowledgeRetriever.Mode.allCases {
            var ranked: [[String]] = []
            for question in questions {
                let asked = ContinuousClock.now
                let hits = try await retriever.search(base, query: question.question, k: depth, mode: mode)
                latencies[mode.rawValue, default: []].append(KnowledgeBenchmark.seconds(ContinuousClock.now - asked) * 1000)
                ranked.append(Self.pages(hits.compactMap { pageOf[$0.chunk.documentID] }))
            }
            rankings[mode.rawValue] = ranked
        }

        // bm25s over the same chunks and questions.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("chronicle-bench-eval-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let flat = { (text: String) in text.replacingOccurrences(of: "\n", with: " ") }
        try Data(texts.map { flat($0.text) }.joined(separator: "\n").utf8).write(to: folder.appendingPathComponent("texts.txt"))
        try Data(questions.map { flat($0.question) }.joined(separator: "\n").utf8).write(to: folder.appendingPathComponent("queries.txt"))
        let peer = try Self.bm25Rankings(folder: folder, depth: depth)
        rankings["bm25s"] = peer.map { Self.pages($0.map { texts[$0].page }) }

        // Over every question, and over those on even lines of the file alone (offsets 1, 3, …):
        // the passage scoring's window was chosen on the others (bench/knowledge-eval/README.md).
        var scores: [String: (recall: Double, ndcg: Double)] = [:]
        var heldOut: [String: (recall: Double, ndcg: Double)] = [:]
        for (name, ranked) in rankings {
            let each = zip(questions, ranked).map { Self.score(ranking: $0.1, relevant: Set($0.0.relevant)) }
            let odd = each.enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
            scores[name] = (each.map(\.recall).reduce(0, +) / Double(each.count), each.map(\.ndcg).reduce(0, +) / Double(each.count))
            heldOut[name] = (odd.map(\.recall).reduce(0, +) / Double(odd.count), odd.map(\.ndcg).reduce(0, +) / Double(odd.count))
        }
        let round = { (value: Double) in JSONValue.number((value * 1000).rounded() / 1000) }
        let hybrid = scores["hybrid"]!, keyword = scores["keyword"]!, vector = scores["vector"]!, bm25 = scores["bm25s"]!
        for mode in KnowledgeRetriever.Mode.allCases {
            let score = scores[mode.rawValue]!
            report.emit("knowledge.quality.\(mode.rawValue).recall_at_10", score.recall, unit: "fraction", [
                "recall_at_10": round(score.recall), "ndcg_at_10": round(score.ndcg),
                "held_out_recall_at_10": round(heldOut[mode.rawValue]!.recall), "held_out_ndcg_at_10": round(heldOut[mode.rawValue]!.ndcg),
                "search_p50_ms": round(Self.percentile(latencies[mode.rawValue]!, 50)), "search_p95_ms": round(Self.percentile(latencies[mode.rawValue]!, 95)),
                "bm25s_recall_at_10": round(bm25.recall), "bm25s_ndcg_at_10": round(bm25.ndcg),
                "questions": .number(Double(questions.count)), "pages": .number(Double(pages.count)), "chunks": .number(Double(texts.count)),
                "corpus": .string("Python 3.11 library reference, Debian python3.11-doc (\(Self.corpus))"),
                "labels": "bench/knowledge-eval/python-3.11-library.jsonl", "embedder": .string(embedder.model),
                "scoring": .string("top \(depth) chunks folded into pages by best chunk; recall and nDCG (binary) over the first 10 pages"),
            ])
        }
        report.emit("knowledge.quality.hybrid_margin", min(hybrid.ndcg - keyword.ndcg, hybrid.ndcg - vector.ndcg), unit: "nDCG@10", [
            "hybrid_beats_keyword_and_vector": .bool(hybrid.recall > max(keyword.recall, vector.recall) && hybrid.ndcg > max(keyword.ndcg, vector.ndcg)),
            "hybrid_minus_bm25s_ndcg": round(hybrid.ndcg - bm25.ndcg), "indexing_seconds": round(indexing),
            "held_out_hybrid_margin": round(min(heldOut["hybrid"]!.ndcg - heldOut["keyword"]!.ndcg, heldOut["hybrid"]!.ndcg - heldOut["vector"]!.ndcg)),
            "passages": .string(retriever.passages.map { "best passage of \($0.window) tokens every \($0.stride), over the nearest \($0.pool) chunks" } ?? "none"),
            "indexing_chunks_per_s": .number((Double(texts.count) / indexing).rounded()),
        ])
    }

    static func percentile(_ values: [Double], _ p: Int) -> Double {
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, sorted.count * p / 100)]
    }

    /// Pages in the order of their best chunk.
    static func pages(_ chunkPages: [String]) -> [String] {
        var seen = Set<String>()
        return chunkPages.filter { seen.insert($0).inserted }
    }

    /// Recall@10 and nDCG@10 with binary gains.
    static func score(ranking: [String], relevant: Set<String>) -> (recall: Double, ndcg: Double) {
        let top = ranking.prefix(10)
        let hits = top.filter(relevant.contains).count
        let dcg = top.enumerated().reduce(0.0) { sum, item in relevant.contains(item.element) ? sum + 1 / log2(Double(item.offset) + 2) : sum }
        let ideal = (0..<min(relevant.count, 10)).reduce(0.0) { $0 + 1 / log2(Double($1) + 2) }
        return (Double(hits) / Double(relevant.count), ideal > 0 ? dcg / ideal : 0)
    }

    /// bm25s's ranking of the chunks for each question, as chunk numbers.
    static func bm25Rankings(folder: URL, depth: Int) throws -> [[Int]] {
        let output = try KnowledgeBenchmark.runPython(bm25Script, arguments: [folder.path, String(depth)])
        guard let ranked = try? JSONDecoder().decode([[Int]].self, from: output) else {
            throw CLIError("bm25s printed no rankings: \(String(decoding: output.prefix(500), as: UTF8.self))")
        }
        return ranked
    }

    static let bm25Script = """
        import json, sys
        import bm25s
        folder, depth = sys.argv[1], int(sys.argv[2])
        texts = open(folder + "/texts.txt").read().split("\\n")
        queries = open(folder + "/queries.txt").read().split("\\n")
        retriever = bm25s.BM25()
        retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
        ranked = []
        for q in queries:
            found, _ = retriever.retrieve(bm25s.tokenize([q], stopwords="en", show_progress=False), k=min(depth, len(texts)), show_progress=False)
            ranked.append([int(i) for i in found[0]])
        print(json.dumps(ranked))
        """
}
