import Adapters
import Commands
import Events
import Foundation
import PostgresNIO
import Testing
import Workers

/// Knowledge under faults, each on real servers: an indexing worker killed mid-document, a
/// document re-uploaded three times at once, a document deleted while it is indexed, and a
/// re-index with other chunk settings. The slow cases embed through the stub's `/embeddings`
/// (`stub-embed-slow`, 0.5 s a batch of 64), so a run lasts seconds.
@Suite(.serialized) struct KnowledgeFaultTests {
    typealias Client = HTTPTestClient

    static func slowEnv(_ url: String) -> [String: String?] {
        [
            "CHRONICLE_LLM_BASE_URL": url, "CHRONICLE_KNOWLEDGE_EMBEDDER": "openai", "CHRONICLE_KNOWLEDGE_EMBEDDING_MODEL": "stub-embed-slow",
            "CHRONICLE_LLM_PRICES": #"{"stub-embed": {"input_per_million": 1000000, "output_per_million": 0}}"#,
        ]
    }

    /// About `paragraphs` paragraphs of distinct text: with 32-token chunks, one chunk each.
    static func longDocument(paragraphs: Int, word: String = "alpha") -> String {
        (0..<paragraphs).map { "Paragraph \($0) speaks of \(word) number \($0) and of nothing else at all, in a sentence of its own." }
            .joined(separator: "\n\n")
    }

    static func createBase(_ client: Client, maxTokens: Int = 32) async throws -> String {
        let created = try await client.send("POST", "/api/v1/knowledge/bases", json: ["name": "Faults", "chunking": ["max_tokens": maxTokens, "overlap_tokens": 0]])
        #expect(created.status == 201, "\(created.text)")
        return try #require(created.json["id"] as? String)
    }

    static func upload(_ client: Client, _ base: String, _ text: String, document: String? = nil) async throws -> [String: Any] {
        var json: [String: Any] = ["name": "doc.md", "media_type": "text/markdown", "content": text]
        if let document { json["document_id"] = document }
        let reply = try await client.send("POST", "/api/v1/knowledge/bases/\(base)/documents", json: json)
        #expect(reply.status == 202, "\(reply.text)")
        return reply.json
    }

    static func run(_ database: ChronicleDatabase, document: UUID, version: Int, chunking: ChunkingSettings) async throws -> [KnowledgeIndexingEvent] {
        let run = KnowledgeIndexingDecider.runID(document: document, version: version, chunking: chunking)
        return try await database.eventStore.readStream(KnowledgeIndexingDecider.streamID(run).description, from: 1, direction: .forward, limit: 100)
            .compactMap { KnowledgeIndexingEvent(payload: try EventRegistry.knowledge.decode($0)) }
    }

    static func count(_ database: ChronicleDatabase, _ sql: PostgresQuery) async throws -> Int {
        try await KnowledgeEndToEndTests.count(database, sql)
    }

    static func status(_ client: Client, _ base: String, _ document: String) async throws -> (Client.Reply, String?) {
        let reply = try await client.poll("/api/v1/knowledge/bases/\(base)/documents/\(document)", timeout: .seconds(120)) { json in
            ["completed", "failed", "cancelled"].contains((json["indexing"] as? [String: Any])?["status"] as? String ?? "")
        }
        return (reply, (reply.json["indexing"] as? [String: Any])?["status"] as? String)
    }

    static func waitUntil(_ what: String, timeout: Duration = .seconds(60), _ done: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while try await !done() {
            guard ContinuousClock.now < deadline else {
                Issue.record("timed out waiting until \(what)")
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    static let chunking = ChunkingSettings(maxTokens: 32, overlapTokens: 0)

    /// A run's ends (progress events are not).
    static func ends(_ events: [KnowledgeIndexingEvent]) -> [KnowledgeIndexingEvent] {
        events.filter {
            switch $0 {
            case .started, .progressed: false
            case .completed, .failed, .cancelled, .timedOut: true
            }
        }
    }

    static func starts(_ events: [KnowledgeIndexingEvent]) -> Int { events.filter { if case .started = $0 { true } else { false } }.count }

    @Test func anIndexingWorkerKilledMidDocumentLeavesOneCompletedRunAndNoDuplicateChunk() async throws {
        let stub = StubModelServer(slowSeconds: 5)
        try await stub.run { url in
            try await TestServers.withDatabase { database in
                try await AgentsEndToEndTests.withServer(database, roles: "api,relay", env: Self.slowEnv(url)) { client, _ in
                    let base = try await Self.createBase(client)
                    let stored = try await Self.upload(client, base, Self.longDocument(paragraphs: 640))
                    let documentText = try #require(stored["id"] as? String)
                    let document = try #require(UUID(uuidString: documentText))
                    let arguments = ["serve", "--roles", "workers", "--database-url", CLITests.url(database)]
                    let worker = try CLIProcess.start(arguments, environment: CLIProcess.environment(Self.slowEnv(url)))
                    try await CLIProcess.stopping(worker) {
                        // Killed once it has started the run and embedded (and cached) two batches:
                        // batches go one after the other, so a third request means two answered.
                        try await Self.waitUntil("the first worker embeds", timeout: .seconds(90)) {
                            let started = Self.starts(try await Self.run(database, document: document, version: 1, chunking: Self.chunking)) == 1
                            return started && stub.requests(model: "stub-embed-slow").count >= 3
                        }
                        await CLIProcess.stop(worker, signal: SIGKILL)
                    }
                    let atKill = try await Self.run(database, document: document, version: 1, chunking: Self.chunking)
                    #expect(Self.starts(atKill) == 1 && Self.ends(atKill).isEmpty, "the run was not mid-document when the worker died: \(atKill)")
                    let calls = stub.requests(model: "stub-embed-slow").count
                    let replacement = try CLIProcess.start(arguments, environment: CLIProcess.environment(Self.slowEnv(url)))
                    try await CLIProcess.stopping(replacement) {
                        let (reply, status) = try await Self.status(client, base, documentText)
                        #expect(status == "completed", "\(reply.text)")
                        // A duplicate has its chance to show up before counting.
                        try await Task.sleep(for: .seconds(1))
                    }
                    let events = try await Self.run(database, document: document, version: 1, chunking: Self.chunking)
                    let ends = Self.ends(events)
                    #expect(Self.starts(events) == 1 && ends.count == 1, "\(events)")
                    guard case .completed(let completed)? = ends.first else { return }
                    let rows = try await Self.count(database, "SELECT count(*) FROM knowledge_chunks WHERE document_id = \(document)")
                    let ordinals = try await Self.count(database, "SELECT count(DISTINCT ordinal) FROM knowledge_chunks WHERE document_id = \(document)")
                    #expect(rows == completed.chunks && ordinals == rows && rows >= 600, "\(rows) rows, \(ordinals) ordinals, \(completed.chunks) chunks")
                    // What the dead worker embedded came from the cache.
                    #expect(completed.embedded < completed.chunks, "\(completed.embedded) of \(completed.chunks) embedded again")
                    // Tokens as the provider counted them (the stub: one a text), for what this
                    // run embedded, priced by the table (a dollar a token here).
                    #expect(completed.embeddingTokens == completed.embedded && completed.embeddingCost == Double(completed.embedded), "\(completed)")
                    #expect(stub.requests(model: "stub-embed-slow").count > calls)
                }
            }
        }
    }

    /// A document being indexed: uploaded to a new base on a server whose embedder answers slowly
    /// (half a second a call), once its run has sent its first batch to the embedder.
    struct Embedding {
        let client: Client
        let database: ChronicleDatabase
        let stub: StubModelServer
        let base: String
        let documentText: String
        let document: UUID
        let contentHash: String
    }

    static func whileEmbedding(paragraphs: Int, word: String, _ body: @escaping @Sendable (Embedding) async throws -> Void) async throws {
        let stub = StubModelServer(slowSeconds: 5)
        try await stub.run { url in
            try await TestServers.withDatabase { database in
                try await AgentsEndToEndTests.withServer(database, roles: "api,relay,workers", env: Self.slowEnv(url)) { client, _ in
                    let base = try await Self.createBase(client)
                    let stored = try await Self.upload(client, base, Self.longDocument(paragraphs: paragraphs, word: word))
                    let documentText = try #require(stored["id"] as? String)
                    let document = try #require(UUID(uuidString: documentText))
                    try await Self.waitUntil("the run embeds", timeout: .seconds(90)) { !stub.requests(model: "stub-embed-slow").isEmpty }
                    try await body(Embedding(
                        client: client, database: database, stub: stub, base: base, documentText: documentText, document: document,
                        contentHash: stored["content_hash"] as? String ?? ""))
                }
            }
        }
    }

    @Test func aDocumentDeletedWhileItIsIndexedLeavesNothingSearchable() async throws {
        try await Self.whileEmbedding(paragraphs: 320, word: "zeppelin") { indexing in
            let (client, database, base, documentText, document) = (indexing.client, indexing.database, indexing.base, indexing.documentText, indexing.document)
            let deleted = try await client.send("DELETE", "/api/v1/knowledge/bases/\(base)/documents/\(documentText)")
            #expect(deleted.status == 204, "\(deleted.text)")
            try await Self.waitUntil("the run ends", timeout: .seconds(90)) {
                !Self.ends(try await Self.run(database, document: document, version: 1, chunking: Self.chunking)).isEmpty
            }
            let events = try await Self.run(database, document: document, version: 1, chunking: Self.chunking)
            guard Self.ends(events).count == 1, case .cancelled? = Self.ends(events).first else {
                Issue.record("the run did not end cancelled: \(events)")
                return
            }
            try await Self.waitUntil("the blob is removed") {
                try await Self.count(database, "SELECT count(*) FROM knowledge_blobs WHERE sha256 = \(indexing.contentHash)") == 0
            }
            // Give a late write its chance, then look.
            try await Task.sleep(for: .seconds(1))
            #expect(try await Self.count(database, "SELECT count(*) FROM knowledge_chunks WHERE document_id = \(document)") == 0)
            let search = try await client.send("POST", "/api/v1/knowledge/bases/\(base)/search", json: ["query": "zeppelin", "mode": "keyword"])
            #expect(KnowledgeEndToEndTests.hits(search).isEmpty, "\(search.text)")
        }
    }

    /// A user's cancel mid-run: the run ends cancelled once, stops embedding at its next progress
    /// check, and leaves nothing of the document searchable.
    @Test func aRunCancelledWhileItIsIndexedStopsAndLeavesNothingSearchable() async throws {
        // 1,600 chunks: 25 batches of 64, half a second each.
        try await Self.whileEmbedding(paragraphs: 1_600, word: "dirigible") { indexing in
            let (client, database, stub, base, document) = (indexing.client, indexing.database, indexing.stub, indexing.base, indexing.document)
            let cancel = "/api/v1/knowledge/bases/\(base)/documents/\(indexing.documentText)/cancel"
            let cancelled = try await client.send("POST", cancel)
            #expect(cancelled.status == 202 && (cancelled.json["indexing"] as? [String: Any])?["status"] as? String == "cancelled", "\(cancelled.text)")
            #expect(try await client.send("POST", cancel).status == 202)
            // The worker stops at its next progress check (every 10 s), well before the end.
            var calls = -1
            try await Self.waitUntil("the worker stops embedding", timeout: .seconds(60)) {
                let now = stub.requests(model: "stub-embed-slow").count
                defer { calls = now }
                try await Task.sleep(for: .seconds(2))
                return now == calls
            }
            #expect(calls < 25, "the worker embedded every batch (\(calls)) after its run was cancelled")
            let events = try await Self.run(database, document: document, version: 1, chunking: Self.chunking)
            guard Self.ends(events).count == 1, case .cancelled(let ended)? = Self.ends(events).first else {
                Issue.record("the run did not end cancelled once: \(events)")
                return
            }
            #expect(ended.reason == "cancelled on request")
            #expect(try await Self.count(database, "SELECT count(*) FROM knowledge_chunks WHERE document_id = \(document)") == 0)
            let search = try await client.send("POST", "/api/v1/knowledge/bases/\(base)/search", json: ["query": "dirigible", "mode": "keyword"])
            #expect(KnowledgeEndToEndTests.hits(search).isEmpty, "\(search.text)")
        }
    }

    /// An embedder the watchdog test never calls.
    struct Unused: Embedder {
        var model: String { "unused" }
        var dimensions: Int { 0 }
        func embed(_ texts: [String]) async throws -> [[Float]] { [] }
    }

    @Test func aRunThatStopsMakingProgressIsTimedOutOnceAndNeverBefore() async throws {
        try await TestServers.withDatabase { database in
            let base = UUID(), document = UUID()
            let bases = CommandHandler<KnowledgeBaseDecider>(store: database.eventStore)
            _ = try await bases.handle(
                .create(knowledgeBaseID: base, ownerID: "o", name: "B", description: "", chunking: .default, embeddingModel: "unused", now: Date()),
                on: KnowledgeBaseDecider.streamID(base), context: CommandContext(userID: "o"))
            _ = try await bases.handle(
                .store(documentID: document, content: .init(name: "d.md", mediaType: "text/markdown", contentHash: String(repeating: "a", count: 64), byteCount: 1), now: Date()),
                on: KnowledgeBaseDecider.streamID(base), context: CommandContext(userID: "o"))
            // A worker started the run and was lost with its message.
            let run = KnowledgeIndexingDecider.runID(document: document, version: 1, chunking: .default)
            _ = try await CommandHandler<KnowledgeIndexingDecider>(store: database.eventStore).handle(
                .start(.init(runID: run, knowledgeBaseID: base, documentID: document, version: 1, chunking: .default, embeddingModel: "unused", startedAt: Date())),
                on: KnowledgeIndexingDecider.streamID(run), context: CommandContext(userID: "system:knowledge-indexer"))
            let watchdog = KnowledgeIndexWorker(
                store: database.eventStore, storage: PostgresKnowledgeStorage(client: database.client, logger: TestServers.logger), embedder: Unused(),
                extract: { _, _ in "" }, stallAfter: .seconds(30), logger: TestServers.logger)
            let policy = StallPolicy(grace: .seconds(5))
            #expect(try await watchdog.failIfStalled(run, policy: policy, now: Date().addingTimeInterval(20)) == false, "timed out before 30 s of silence")
            #expect(try await watchdog.failIfStalled(run, policy: policy, now: Date().addingTimeInterval(40)) == true)
            #expect(try await watchdog.failIfStalled(run, policy: policy, now: Date().addingTimeInterval(80)) == false, "timed out twice")
            let events = try await Self.run(database, document: document, version: 1, chunking: .default)
            guard case .timedOut(let timedOut)? = events.last, Self.ends(events).count == 1 else {
                Issue.record("\(events)")
                return
            }
            #expect(timedOut.reason.contains("no progress"))
        }
    }

    @Test func aDocumentUploadedThreeTimesAtOnceLeavesOneVersionSearchable() async throws {
        try await TestServers.withDatabase { database in
            try await AgentsEndToEndTests.withServer(database, roles: "api,relay,workers") { client, _ in
                let base = try await Self.createBase(client)
                let first = try await Self.upload(client, base, Self.longDocument(paragraphs: 40, word: "firstling"))
                let document = try #require(first["id"] as? String)
                _ = try await Self.upload(client, base, Self.longDocument(paragraphs: 40, word: "secondling"), document: document)
                let third = try await Self.upload(client, base, Self.longDocument(paragraphs: 40, word: "thirdling"), document: document)
                #expect(third["version"] as? Int == 3)
                let (reply, status) = try await Self.status(client, base, document)
                #expect(status == "completed" && reply.json["version"] as? Int == 3, "\(reply.text)")
                let id = try #require(UUID(uuidString: document))
                // Every run ends, and only version 3's chunks stay.
                try await Self.waitUntil("versions 1 and 2 end") {
                    let runs = [
                        try await Self.run(database, document: id, version: 1, chunking: Self.chunking),
                        try await Self.run(database, document: id, version: 2, chunking: Self.chunking),
                    ]
                    return runs.allSatisfy { !Self.ends($0).isEmpty || $0.isEmpty }
                }
                try await Task.sleep(for: .seconds(1))
                #expect(try await Self.count(database, "SELECT count(*) FROM knowledge_chunks WHERE document_id = \(id) AND document_version <> 3") == 0)
                #expect(try await Self.count(database, "SELECT count(*) FROM knowledge_chunks WHERE document_id = \(id)") >= 40)
                for (word, expected) in [("firstling", false), ("secondling", false), ("thirdling", true)] {
                    let search = try await client.send("POST", "/api/v1/knowledge/bases/\(base)/search", json: ["query": word, "mode": "keyword"])
                    #expect(KnowledgeEndToEndTests.hits(search).isEmpty != expected, "\(word): \(search.text)")
                }
                // The replaced versions' bytes go (each after its successor's message); the
                // current version's stay.
                try await Self.waitUntil("the replaced bytes are removed", timeout: .seconds(30)) {
                    try await Self.count(database, "SELECT count(*) FROM knowledge_blobs") == 1
                }
            }
        }
    }

    @Test func aReindexWithOtherChunkSettingsLeavesNoOrphans() async throws {
        try await TestServers.withDatabase { database in
            try await AgentsEndToEndTests.withServer(database, roles: "api,relay,workers") { client, _ in
                let base = try await Self.createBase(client)
                let stored = try await Self.upload(client, base, Self.longDocument(paragraphs: 60))
                let document = try #require(stored["id"] as? String)
                let id = try #require(UUID(uuidString: document))
                #expect(try await Self.status(client, base, document).1 == "completed")
                let before = try await Self.count(database, "SELECT count(*) FROM knowledge_chunks WHERE document_id = \(id)")
                let changed = try await client.send("PUT", "/api/v1/knowledge/bases/\(base)/chunking", json: ["max_tokens": 256, "overlap_tokens": 16])
                #expect(changed.status == 202 && (changed.json["chunking"] as? [String: Any])?["max_tokens"] as? Int == 256, "\(changed.text)")
                let (reply, status) = try await Self.status(client, base, document)
                #expect(status == "completed", "\(reply.text)")
                let wider = ChunkingSettings(maxTokens: 256, overlapTokens: 16)
                guard case .completed(let completed)? = try await Self.run(database, document: id, version: 1, chunking: wider).last else {
                    Issue.record("the re-index did not complete")
                    return
                }
                let expected = (0..<completed.chunks).map { Chunk.id(document: id, version: 1, settings: wider, ordinal: $0) }
                let rows = try await Self.count(database, "SELECT count(*) FROM knowledge_chunks WHERE knowledge_base_id = \(UUID(uuidString: base)!)")
                let matching = try await Self.count(database, "SELECT count(*) FROM knowledge_chunks WHERE chunk_id = ANY(\(expected))")
                #expect(rows == completed.chunks && matching == rows && rows < before, "\(rows) rows, \(matching) of the new run's, \(before) before")
                let bad = try await client.send("PUT", "/api/v1/knowledge/bases/\(base)/chunking", json: ["max_tokens": 64, "overlap_tokens": 60])
                #expect(bad.status == 422, "\(bad.text)")
            }
        }
    }
}
