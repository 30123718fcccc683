import API
import Commands
import Events
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Prometheus
import Synchronization
import Testing

/// The Knowledge routes through `app.test(.router)` with the in-memory store and storage: what is
/// accepted and refused, in the API's words, and owner isolation. Indexing and search over real
/// Postgres are in the integration tests.
@Suite struct KnowledgeRouteTests {
    /// Blobs in memory; an empty index.
    final class MemoryStorage: KnowledgeStorage {
        let blobs = Mutex<[String: Data]>([:])

        func storeBlob<T: Sendable>(
            knowledgeBase: UUID, sha256: String, mediaType: String, bytes: Data, record: @escaping @Sendable () async throws -> T
        ) async throws -> T {
            blobs.withLock { $0["\(knowledgeBase)/\(sha256)"] = bytes }
            return try await record()
        }
        func blob(knowledgeBase: UUID, sha256: String) async throws -> Data? { blobs.withLock { $0["\(knowledgeBase)/\(sha256)"] } }
        func removeBlob(knowledgeBase: UUID, sha256: String, unused: @escaping @Sendable () async throws -> Bool) async throws {}
        func cachedVectors(_ hashes: [String], model: String) async throws -> [String: [Float]] { [:] }
        func cacheVectors(_ vectors: [String: [Float]], model: String) async throws {}
        func replaceChunks(
            knowledgeBase: UUID, document: UUID, version: Int, model: String, chunks: [IndexedChunk], current: @escaping @Sendable () async throws -> Bool
        ) async throws -> Bool { false }
        func removeChunks(knowledgeBase: UUID, document: UUID) async throws {}
        func keywordSearch(knowledgeBase: UUID, query: String, k: Int) async throws -> [ScoredChunk] { [] }
        func chunks(_ ids: [UUID]) async throws -> [UUID: FoundChunk] { [:] }
        func nearest(knowledgeBase: UUID, to query: [Float], k: Int) async throws -> [ScoredChunk] { [] }
    }

    struct FixedEmbedder: Embedder {
        var model: String { "fixed (test)" }
        var dimensions: Int { 2 }
        func embed(_ texts: [String]) async throws -> [[Float]] { texts.map { _ in [1, 0] } }
    }

    static func controller(_ identity: TestIdentity, storage: MemoryStorage = MemoryStorage()) -> KnowledgeController {
        KnowledgeController(store: identity.store, storage: storage, embedder: FixedEmbedder(), settings: .init(maxDocumentBytes: 1 << 16))
    }

    static func app(identity: TestIdentity, storage: MemoryStorage = MemoryStorage()) -> some ApplicationProtocol {
        buildApplication(
            server: ServerSettings(),
            dependencies: AppDependencies(
                healthChecks: [], registry: PrometheusCollectorRegistry(), identity: identity.dependencies,
                routes: [controller(identity, storage: storage).mount]
            ) { .init(ready: true) },
            logger: Logger(label: "test"))
    }

    func create(_ client: some TestClientProtocol, _ auth: HTTPFields) async throws -> String {
        try await client.execute(uri: "/api/v1/knowledge/bases", method: .post, headers: auth, body: AgentRouteTests.body(["name": "Docs"])) { response in
            #expect(response.status == .created)
            return try #require(AgentRouteTests.json(response.body)["id"] as? String)
        }
    }

    static func json(_ auth: HTTPFields) -> HTTPFields {
        var headers = auth
        headers[.contentType] = "application/json"
        return headers
    }

    @Test func documentsAreAcceptedAsJSONOrMultipartAndTheirBytesKeptByHash() async throws {
        let identity = try await TestIdentity()
        let auth = Self.json(try await identity.bearer("alice@example.com"))
        let storage = MemoryStorage()
        try await Self.app(identity: identity, storage: storage).test(.router) { client in
            let base = try await create(client, auth)
            let text = "# Title\n\nSome text."
            let (id, hash) = try await client.execute(
                uri: "/api/v1/knowledge/bases/\(base)/documents", method: .post, headers: auth,
                body: AgentRouteTests.body(["name": "a.md", "media_type": "text/markdown", "content": text])
            ) { response in
                #expect(response.status == .accepted, "\(String(buffer: response.body))")
                let body = AgentRouteTests.json(response.body)
                #expect((body["indexing"] as? [String: Any])?["status"] as? String == "queued")
                return (try #require(body["id"] as? String), try #require(body["content_hash"] as? String))
            }
            // The bytes are kept under their sha256 (of "# Title\n\nSome text.").
            #expect(hash == "db77ff97e885190610ee11cc239c8684a257e907bc73cfd24dd2dd32b06029ae")
            #expect(storage.blobs.withLock { $0["\(UUID(uuidString: base)!)/\(hash)"] } == Data(text.utf8))
            // A multipart upload: the type from the part, else from the name.
            let boundary = "b0und4ry"
            var multipart = "--\(boundary)\r\nContent-Disposition: form-data; name=\"document_id\"\r\n\r\n\(id)\r\n"
            multipart += "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.md\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            multipart += "# Title\n\nOther text.\r\n--\(boundary)--\r\n"
            var headers = auth
            headers[.contentType] = "multipart/form-data; boundary=\(boundary)"
            try await client.execute(uri: "/api/v1/knowledge/bases/\(base)/documents", method: .post, headers: headers, body: ByteBuffer(string: multipart)) {
                #expect($0.status == .accepted, "\(String(buffer: $0.body))")
                let body = AgentRouteTests.json($0.body)
                #expect(body["version"] as? Int == 2 && body["media_type"] as? String == "text/markdown" && body["id"] as? String == id)
            }
            try await client.execute(uri: "/api/v1/knowledge/bases/\(base)/documents", method: .get, headers: auth) {
                #expect(AgentRouteTests.json($0.body)["total_count"] as? Int == 1)
            }
            // A new document's id is the server's: document_id names an existing document.
            try await client.execute(
                uri: "/api/v1/knowledge/bases/\(base)/documents", method: .post, headers: auth,
                body: AgentRouteTests.body(["name": "b.md", "media_type": "text/markdown", "content": "x", "document_id": UUID().uuidString])
            ) {
                #expect($0.status == .notFound && AgentRouteTests.json($0.body)["code"] as? String == "knowledge.document_not_found")
            }
        }
    }

    @Test(arguments: [
        ("json", "{\"name\": \"a.png\", \"media_type\": \"image/png\", \"content\": \"x\"}", 422, "knowledge.media_type_unsupported"),
        ("json", "{\"name\": \"a.md\", \"media_type\": \"text/markdown\"}", 400, "knowledge.document_invalid"),
        ("json", "{\"name\": \"a.md\", \"media_type\": \"text/markdown\", \"content_base64\": \"***\"}", 400, "knowledge.document_invalid"),
        ("json", "{\"name\": \"a.md\", \"media_type\": \"text/markdown\", \"content\": \"\"}", 422, "knowledge.document_invalid"),
        ("json", "{\"name\": \"a.md\", \"media_type\": \"text/markdown\", \"content\": \"x\", \"document_id\": \"nope\"}", 400, "knowledge.document_invalid"),
        ("text", "just text", 415, "request.unsupported_media_type"),
        ("multipart", "--x\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nv\r\n--x--\r\n", 400, "knowledge.document_invalid"),
        ("multipart", "no boundary here", 400, "knowledge.document_invalid"),
    ])
    func badUploadsAreProblems(_ kind: String, _ body: String, _ status: Int, _ code: String) async throws {
        let identity = try await TestIdentity()
        let auth = try await identity.bearer("alice@example.com")
        try await Self.app(identity: identity).test(.router) { client in
            let base = try await create(client, Self.json(auth))
            var headers = auth
            headers[.contentType] = kind == "json" ? "application/json" : kind == "text" ? "text/plain" : "multipart/form-data; boundary=x"
            try await client.execute(uri: "/api/v1/knowledge/bases/\(base)/documents", method: .post, headers: headers, body: ByteBuffer(string: body)) {
                #expect(Int($0.status.code) == status, "\(String(buffer: $0.body))")
                #expect(AgentRouteTests.json($0.body)["code"] as? String == code, "\(String(buffer: $0.body))")
                #expect($0.headers[.contentType] == "application/problem+json")
            }
        }
    }

    @Test func aDocumentOverTheLimitIs413() async throws {
        let identity = try await TestIdentity()
        let auth = Self.json(try await identity.bearer("alice@example.com"))
        try await Self.app(identity: identity).test(.router) { client in
            let base = try await create(client, auth)
            let body = AgentRouteTests.body(["name": "big.txt", "media_type": "text/plain", "content": String(repeating: "a", count: (1 << 16) + 1)])
            try await client.execute(uri: "/api/v1/knowledge/bases/\(base)/documents", method: .post, headers: auth, body: body) {
                #expect($0.status == .contentTooLarge)
                #expect(AgentRouteTests.json($0.body)["code"] as? String == "knowledge.document_too_large")
            }
        }
    }

    @Test func cancellingADocumentsIndexingIsIdempotentAndARunThatEndedOtherwiseIsAConflict() async throws {
        let identity = try await TestIdentity()
        let alice = Self.json(try await identity.bearer("alice@example.com"))
        let bob = Self.json(try await identity.bearer("bob@example.com"))
        let vera = Self.json(try await identity.bearer("vera@example.com"))
        try await Self.app(identity: identity).test(.router) { client in
            let base = try await create(client, alice)
            func upload(_ name: String) async throws -> String {
                try await client.execute(
                    uri: "/api/v1/knowledge/bases/\(base)/documents", method: .post, headers: alice,
                    body: AgentRouteTests.body(["name": name, "media_type": "text/markdown", "content": "# \(name)\n\nText."])
                ) { try #require(AgentRouteTests.json($0.body)["id"] as? String) }
            }
            let queued = try await upload("a.md")
            let cancel = "/api/v1/knowledge/bases/\(base)/documents/\(queued)/cancel"
            try await client.execute(uri: cancel, method: .post, headers: vera) { #expect($0.status == .forbidden) }
            try await client.execute(uri: cancel, method: .post, headers: bob) { #expect($0.status == .notFound) }
            let first = try await client.execute(uri: cancel, method: .post, headers: alice) { response in
                #expect(response.status == .accepted, "\(String(buffer: response.body))")
                let indexing = AgentRouteTests.json(response.body)["indexing"] as? [String: Any]
                #expect(indexing?["status"] as? String == "cancelled" && indexing?["reason"] as? String == "cancelled on request", "\(indexing ?? [:])")
                return response.headers[.eTag]
            }
            // Again: the same answer, and nothing appended.
            try await client.execute(uri: cancel, method: .post, headers: alice) {
                #expect($0.status == .accepted && $0.headers[.eTag] == first)
                #expect((AgentRouteTests.json($0.body)["indexing"] as? [String: Any])?["status"] as? String == "cancelled")
            }
            try await client.execute(uri: "/api/v1/knowledge/bases/\(base)/documents/\(UUID())/cancel", method: .post, headers: alice) {
                #expect($0.status == .notFound && AgentRouteTests.json($0.body)["code"] as? String == "knowledge.document_not_found")
            }
            // A run that completed cannot be cancelled.
            let indexed = try await upload("b.md")
            let run = KnowledgeIndexingDecider.runID(document: UUID(uuidString: indexed)!, version: 1, chunking: .default)
            let runs = CommandHandler<KnowledgeIndexingDecider>(store: identity.store)
            _ = try await runs.handle(
                .start(.init(runID: run, knowledgeBaseID: UUID(uuidString: base)!, documentID: UUID(uuidString: indexed)!, version: 1, chunking: .default,
                             embeddingModel: "fixed (test)", startedAt: Date())),
                on: KnowledgeIndexingDecider.streamID(run), context: CommandContext(userID: "worker"))
            _ = try await runs.handle(
                .complete(.init(runID: run, chunks: 1, embedded: 1, characters: 10, completedAt: Date())), on: KnowledgeIndexingDecider.streamID(run),
                context: CommandContext(userID: "worker"))
            try await client.execute(uri: "/api/v1/knowledge/bases/\(base)/documents/\(indexed)/cancel", method: .post, headers: alice) {
                #expect($0.status == .conflict && AgentRouteTests.json($0.body)["code"] as? String == "knowledge.indexing_ended", "\(String(buffer: $0.body))")
            }
        }
    }

    @Test func searchAndAskCheckTheirInputAndAnotherOwnerSeesNothing() async throws {
        let identity = try await TestIdentity()
        let alice = Self.json(try await identity.bearer("alice@example.com"))
        let bob = Self.json(try await identity.bearer("bob@example.com"))
        try await Self.app(identity: identity).test(.router) { client in
            let base = try await create(client, alice)
            for (body, status) in [
                (["query": ""], 400), (["query": "x", "top_k": 0], 400), (["query": "x", "top_k": 51], 400), (["query": "x", "mode": "fuzzy"], 400),
                (["query": "a\u{0}b", "mode": "keyword"], 200), (["query": "vacation"], 200),
            ] as [([String: Any], Int)] {
                try await client.execute(uri: "/api/v1/knowledge/bases/\(base)/search", method: .post, headers: alice, body: AgentRouteTests.body(body)) {
                    #expect(Int($0.status.code) == status, "\(body): \(String(buffer: $0.body))")
                }
            }
            try await client.execute(uri: "/api/v1/knowledge/bases/\(base)/ask", method: .post, headers: alice, body: AgentRouteTests.body(["question": " "])) {
                #expect($0.status == .unprocessableContent, "\(String(buffer: $0.body))")
            }
            let answer = try await client.execute(
                uri: "/api/v1/knowledge/bases/\(base)/ask", method: .post, headers: alice, body: AgentRouteTests.body(["question": "Why?"])
            ) { response in
                #expect(response.status == .accepted)
                return response.headers[.location] ?? ""
            }
            try await client.execute(uri: answer, method: .get, headers: alice) {
                #expect($0.status == .ok && AgentRouteTests.json($0.body)["status"] as? String == "pending")
            }
            for (method, uri) in [
                (HTTPRequest.Method.get, "/api/v1/knowledge/bases/\(base)"), (.get, "/api/v1/knowledge/bases/\(base)/documents"), (.get, answer),
                (.post, "/api/v1/knowledge/bases/\(base)/search"), (.post, "/api/v1/knowledge/bases/\(base)/ask"),
                (.put, "/api/v1/knowledge/bases/\(base)/chunking"), (.delete, "/api/v1/knowledge/bases/\(base)/documents/\(UUID())"),
                (.post, "/api/v1/knowledge/bases/\(base)/documents/\(UUID())/cancel"),
            ] {
                try await client.execute(uri: uri, method: method, headers: bob, body: AgentRouteTests.body(["query": "x", "question": "x", "max_tokens": 64, "overlap_tokens": 0])) {
                    #expect($0.status == .notFound, "\(method) \(uri): \($0.status)")
                }
            }
        }
    }
}
