import Adapters
import CLISupport
import Commands
import Events
import Foundation
import Logging

/// Knowledge, in process: the offline embedder's throughput (chunks/s, the indexing cost that
/// dominates), the chunker's, and exact vector search over 100,000 chunks (p50/p95 of k = 10)
/// beside NumPy's brute force over the same vectors and queries, with the memory the vectors
/// take (resident growth while the matrix is built, beside its payload).
struct KnowledgeBenchmark {
    let report: BenchReport
    let seconds: Int
    let chunks = 100_000
    let queries = 200

    /// A paragraph of about 80 words from a fixed vocabulary, varied by `n`.
    static func paragraph(_ n: Int) -> String {
        let words = [
            "deployment", "release", "canary", "vacation", "employee", "policy", "laptop", "encryption", "receipt", "travel", "meal", "budget",
            "review", "incident", "database", "backup", "restore", "network", "latency", "cache", "index", "search", "answer", "citation",
            "version", "document", "chunk", "vector", "keyword", "hybrid", "ranking", "fusion", "owner", "tenant", "limit", "quota",
        ]
        var generator = SplitMix64(state: UInt64(n) &+ 0x9E37_79B9_7F4A_7C15)
        return (0..<80).map { _ in words[Int(generator.next() % UInt64(words.count))] }.joined(separator: " ") + "."
    }

    func run() async throws {
        let directory = ProcessInfo.processInfo.environment["CHRONICLE_KNOWLEDGE_EMBEDDER_DIR"]
            ?? FileManager.default.currentDirectoryPath + "/.chronicle/" + WordLlamaEmbedder.defaultDirectoryName
        let embedder = try WordLlamaEmbedder(directory: URL(fileURLWithPath: directory))
        let texts = (0..<2_000).map(Self.paragraph)
        let duration = Duration.seconds(seconds)
        var embedded = 0
        var started = ContinuousClock.now
        while ContinuousClock.now - started < duration {
            _ = try await embedder.embed(Array(texts[(embedded % 2_000)..<min(embedded % 2_000 + 64, 2_000)]))
            embedded += min(64, 2_000 - embedded % 2_000)
        }
        let embedRate = Double(embedded) / Self.seconds(ContinuousClock.now - started)
        report.emit("knowledge.embed.throughput", embedRate, unit: "chunks/s", [
            "embedder": .string(embedder.model), "chunk_chars": .number(Double(texts[0].count)), "batch": .number(64), "threads": .number(1),
        ])

        let document = (0..<400).map { "## Section \($0)\n\n" + Self.paragraph($0) + "\n\n" + Self.paragraph($0 + 1) }.joined(separator: "\n\n")
        let chunker = Chunker(settings: .default)
        var cut = 0
        var characters = 0
        started = ContinuousClock.now
        while ContinuousClock.now - started < duration {
            cut += chunker.chunks(of: document).count
            characters += document.count
        }
        report.emit("knowledge.chunk.throughput", Double(characters) / Self.seconds(ContinuousClock.now - started), unit: "characters/s", [
            "chunks_per_s": .number((Double(cut) / Self.seconds(ContinuousClock.now - started)).rounded()), "settings": .string(ChunkingSettings.default.fingerprint),
        ])

        // 100,000 unit vectors of the embedder's size, seeded (the same again for NumPy's file);
        // the queries too.
        let dimensions = embedder.dimensions
        func unit(_ generator: inout SplitMix64) -> [Float] {
            VectorMath.normalized((0..<dimensions).map { _ in Float(Int64(generator.next() % 2_000_001) - 1_000_000) / 1_000_000 })
        }
        let before = Self.residentBytes()
        var matrix = ExactVectorMatrix(dimensions: dimensions)
        var generator = SplitMix64(state: 20_261_202)
        for n in 0..<chunks {
            matrix.append(id: DeterministicID.v5(namespace: DeterministicID.eventNamespace, name: "bench/\(n)"), vector: unit(&generator))
        }
        let grown = Self.residentBytes() - before
        var again = SplitMix64(state: 20_261_202)
        var raw = Data(capacity: chunks * dimensions * 4)
        for _ in 0..<chunks { raw.append(ExactVectorMatrix.pack(unit(&again))) }
        let asked = (0..<queries).map { _ in unit(&generator) }
        var latencies: [Double] = []
        for query in asked {
            let start = ContinuousClock.now
            _ = matrix.nearest(to: query, k: 10)
            latencies.append(Self.seconds(ContinuousClock.now - start) * 1000)
        }
        latencies.sort()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("chronicle-bench-knowledge-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try raw.write(to: folder.appendingPathComponent("vectors.f32"))
        try Data(asked.flatMap(ExactVectorMatrix.pack)).write(to: folder.appendingPathComponent("queries.f32"))
        let peer = try Self.python(Self.numpyScript, folder: folder, dimensions: embedder.dimensions)
        let p50 = latencies[latencies.count / 2], p95 = latencies[latencies.count * 95 / 100]
        report.emit("knowledge.vector_search.p50", p50, unit: "ms", [
            "chunks": .number(Double(chunks)), "dimensions": .number(Double(embedder.dimensions)), "k": .number(10), "queries": .number(Double(queries)),
            "p95_ms": .number((p95 * 100).rounded() / 100), "engine": "ExactVectorMatrix, float32, SIMD16, one thread",
            "numpy_p50_ms": .number(((peer["p50"] ?? 0) * 100).rounded() / 100), "numpy_p95_ms": .number(((peer["p95"] ?? 0) * 100).rounded() / 100),
            "numpy": "matrix @ query, argpartition, float32, same vectors and queries",
            "ratio_to_numpy_p50": .number(((peer["p50"] ?? 0) / p50 * 100).rounded() / 100),
        ])
        report.emit("knowledge.vector_memory", Double(grown) / 1_048_576, unit: "MiB per 100k chunks", [
            "payload_mib": .number((Double(chunks * (embedder.dimensions * 4 + 16)) / 1_048_576 * 100).rounded() / 100),
            "measured": "resident growth while the matrix was built (ids and float32 rows; the array's growth may leave slack)",
        ])
    }

    static let numpyScript = """
        import json, sys, time
        import numpy as np
        folder, dims = sys.argv[1], int(sys.argv[2])
        m = np.fromfile(folder + "/vectors.f32", dtype="<f4").reshape(-1, dims)
        qs = np.fromfile(folder + "/queries.f32", dtype="<f4").reshape(-1, dims)
        times = []
        for q in qs:
            t = time.perf_counter()
            s = m @ q
            top = np.argpartition(-s, 10)[:10]
            top = top[np.argsort(-s[top])]
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        print(json.dumps({"p50": times[len(times) // 2], "p95": times[len(times) * 95 // 100]}))
        """

    /// Runs a peer's script (NumPy, bm25s) in the project's virtualenv, one thread, and reads
    /// its p50 and p95.
    static func python(_ script: String, folder: URL, dimensions: Int) throws -> [String: Double] {
        let output = try runPython(script, arguments: [folder.path, String(dimensions)])
        guard let peer = try? JSONSerialization.jsonObject(with: output) as? [String: Double] else {
            throw CLIError("the Python peer printed no figures: \(String(decoding: output, as: UTF8.self))")
        }
        return peer
    }

    /// Runs `script` in the project's virtualenv, one BLAS thread, and returns what it printed.
    static func runPython(_ script: String, arguments: [String]) throws -> Data {
        guard let python = PersonaBenchmark.python() else { throw CLIError("no Python virtualenv with the peers: run eventstore/dev/install.sh (make bootstrap does)") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-c", script] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(["OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"]) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CLIError("the Python peer failed: \(String(decoding: output.prefix(500), as: UTF8.self))") }
        return output
    }

    /// Resident set size, from /proc/self/statm.
    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}

/// SplitMix64: seeded, so every run measures the same vectors.
struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Knowledge's keyword search (BM25 over Postgres full text: generated `tsvector`, GIN) over
/// 100,000 chunks, p50/p95 of k = 10, beside bm25s (in memory, one process) over the same texts
/// and queries in the same run. The table is vacuumed first, as autovacuum would have.
struct KnowledgeKeywordBenchmark {
    let database: ChronicleDatabase
    let report: BenchReport
    let logger: Logger
    let documents = 100
    let chunksPerDocument = 1_000
    let queries = 200

    /// 5,000 made-up words of two to four syllables, drawn with Zipf's law (rank^-1) into
    /// paragraphs of 80: a vocabulary shaped like a real corpus's, so common words match many
    /// chunks and rare ones few (a 36-word vocabulary matched every chunk with every query).
    static let vocabulary: [String] = {
        let syllables = ["ka", "lo", "mi", "te", "ru", "sa", "no", "vi", "de", "po", "gu", "fe", "ba", "zi", "ho", "ne", "tu", "ra", "le", "mo"]
        var generator = SplitMix64(state: 11)
        var words: [String] = []
        var seen = Set<String>()
        while words.count < 5_000 {
            let word = (0..<(2 + Int(generator.next() % 3))).map { _ in syllables[Int(generator.next() % UInt64(syllables.count))] }.joined()
            if seen.insert(word).inserted { words.append(word) }
        }
        return words
    }()

    /// Cumulative Zipf weights of the vocabulary's ranks.
    static let cumulative: [Double] = {
        var sum = 0.0
        return (1...vocabulary.count).map { rank in
            sum += 1 / Double(rank)
            return sum
        }
    }()

    static func word(_ generator: inout SplitMix64) -> String {
        let target = Double(generator.next() % 1_000_000) / 1_000_000 * cumulative.last!
        var low = 0, high = cumulative.count - 1
        while low < high {
            let middle = (low + high) / 2
            if cumulative[middle] < target { low = middle + 1 } else { high = middle }
        }
        return vocabulary[low]
    }

    static func paragraph(_ n: Int) -> String {
        var generator = SplitMix64(state: UInt64(n) &* 0x9E37_79B9 &+ 1)
        return (0..<80).map { _ in word(&generator) }.joined(separator: " ") + "."
    }

    func run() async throws {
        let storage = PostgresKnowledgeStorage(client: database.client, logger: logger)
        let base = UUID()
        var texts: [String] = []
        for document in 0..<documents {
            let id = DeterministicID.v5(namespace: DeterministicID.eventNamespace, name: "bench-document/\(document)")
            var chunks: [IndexedChunk] = []
            var offset = 0
            for ordinal in 0..<chunksPerDocument {
                let text = Self.paragraph(document * chunksPerDocument + ordinal)
                texts.append(text)
                let chunk = Chunk(
                    ordinal: ordinal, headingPath: ["Document \(document)"], start: offset, end: offset + text.unicodeScalars.count, text: text,
                    tokens: text.count / 4)
                offset = chunk.end + 2
                chunks.append(IndexedChunk(chunkID: Chunk.id(document: id, version: 1, settings: .default, ordinal: ordinal), chunk: chunk, vector: [0]))
            }
            _ = try await storage.replaceChunks(knowledgeBase: base, document: id, version: 1, model: "bench", chunks: chunks) { true }
        }
        try await database.client.query("VACUUM ANALYZE knowledge_chunks", logger: logger)
        // Queries of two words drawn as the texts are (so some are common, most are not).
        var generator = SplitMix64(state: 7)
        let asked = (0..<queries).map { _ in (0..<2).map { _ in Self.word(&generator) }.joined(separator: " ") }
        var latencies: [Double] = []
        for query in asked {
            let start = ContinuousClock.now
            _ = try await storage.keywordSearch(knowledgeBase: base, query: query, k: 10)
            latencies.append(KnowledgeBenchmark.seconds(ContinuousClock.now - start) * 1000)
        }
        latencies.sort()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("chronicle-bench-bm25-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data(texts.joined(separator: "\n").utf8).write(to: folder.appendingPathComponent("texts.txt"))
        try Data(asked.joined(separator: "\n").utf8).write(to: folder.appendingPathComponent("queries.txt"))
        let peer = try KnowledgeBenchmark.python(Self.bm25Script, folder: folder, dimensions: 0)
        let p50 = latencies[latencies.count / 2], p95 = latencies[latencies.count * 95 / 100]
        report.emit("knowledge.keyword_search.p50", p50, unit: "ms", [
            "chunks": .number(Double(texts.count)), "k": .number(10), "queries": .number(Double(queries)), "p95_ms": .number((p95 * 100).rounded() / 100),
            "engine": "BM25 over Postgres full text: generated tsvector, GIN, OR of the query words, document frequencies counted per query, one connection",
            "bm25s_p50_ms": .number(((peer["p50"] ?? 0) * 100).rounded() / 100), "bm25s_p95_ms": .number(((peer["p95"] ?? 0) * 100).rounded() / 100),
            "bm25s": "bm25s 0.2.14, in memory, English stop words, same texts and queries",
            "corpus": "5,000 made-up words drawn by Zipf's law, 80 a chunk; queries of two words drawn the same way",
            "ratio_to_bm25s_p50": .number(((peer["p50"] ?? 0) / p50 * 100).rounded() / 100),
        ])
    }

    static let bm25Script = """
        import json, sys, time
        import bm25s
        folder = sys.argv[1]
        texts = open(folder + "/texts.txt").read().split("\\n")
        queries = open(folder + "/queries.txt").read().split("\\n")
        retriever = bm25s.BM25()
        retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
        times = []
        for q in queries:
            t = time.perf_counter()
            retriever.retrieve(bm25s.tokenize([q], stopwords="en", show_progress=False), k=10, show_progress=False)
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        print(json.dumps({"p50": times[len(times) // 2], "p95": times[len(times) * 95 // 100]}))
        """
}
