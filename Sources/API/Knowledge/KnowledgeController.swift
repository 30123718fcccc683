import Commands
import Crypto
import Events
import Foundation
import Hummingbird

/// The Knowledge routes under `/api/v1/knowledge`: knowledge bases, their documents (uploaded as
/// JSON or multipart, bytes kept by hash outside the log), each document's indexing state, and
/// search. Owner-scoped: another owner's base answers 404. Everything is read from the bases' and
/// runs' own streams, so a document is listed the moment it is stored.
public struct KnowledgeController: Sendable {
    public struct Settings: Sendable {
        /// The largest document, in bytes (413 beyond).
        public var maxDocumentBytes: Int
        public var maxTopK: Int

        public init(maxDocumentBytes: Int = 10 << 20, maxTopK: Int = 50) {
            self.maxDocumentBytes = maxDocumentBytes
            self.maxTopK = maxTopK
        }
    }

    let bases: CommandHandler<KnowledgeBaseDecider>
    let runs: CommandHandler<KnowledgeIndexingDecider>
    let answers: CommandHandler<KnowledgeAnswerDecider>
    let retriever: KnowledgeRetriever
    let storage: any KnowledgeStorage
    let embedder: any Embedder
    let settings: Settings

    public init(store: any EventStore, storage: any KnowledgeStorage, embedder: any Embedder, settings: Settings = .init()) {
        bases = CommandHandler(store: store, memo: KnowledgeBaseDecider.memo())
        runs = CommandHandler(store: store)
        answers = CommandHandler(store: store)
        retriever = KnowledgeRetriever(storage: storage, embedder: embedder)
        self.storage = storage
        self.embedder = embedder
        self.settings = settings
    }

    public func addRoutes(to group: RouterGroup<ChronicleRequestContext>) {
        group.post("bases", use: create)
        group.get("bases/:id", use: show)
        group.put("bases/:id/chunking", use: changeChunking)
        group.post("bases/:id/documents", use: upload)
        group.get("bases/:id/documents", use: documents)
        group.get("bases/:id/documents/:document_id", use: document)
        group.delete("bases/:id/documents/:document_id", use: delete)
        group.post("bases/:id/documents/:document_id/cancel", use: cancelIndexing)
        group.post("bases/:id/search", use: search)
        group.post("bases/:id/ask", use: ask)
        group.get("bases/:id/answers/:answer_id", use: answer)
    }

    static let notFound = Problem(.notFound, code: "knowledge.not_found", detail: "no such knowledge base")
    static let documentNotFound = Problem(.notFound, code: "knowledge.document_not_found", detail: "no such document")

    // MARK: Knowledge bases

    struct Create: Decodable {
        var name: String
        var description: String?
        var chunking: Chunking?

        struct Chunking: Decodable {
            var maxTokens: Int?
            var overlapTokens: Int?
            enum CodingKeys: String, CodingKey {
                case maxTokens = "max_tokens"
                case overlapTokens = "overlap_tokens"
            }
        }
    }

    /// `{name, description?, chunking?: {max_tokens, overlap_tokens}}` → 201.
    @Sendable func create(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        let body = try await request.decode(as: Create.self, context: context)
        let chunking = ChunkingSettings(
            maxTokens: body.chunking?.maxTokens ?? ChunkingSettings.default.maxTokens,
            overlapTokens: body.chunking?.overlapTokens ?? ChunkingSettings.default.overlapTokens)
        let command = try CommandContext.from(request, context: context)
        let id = command.derivedID("knowledge-base")
        let result = try await bases.handle(
            .create(
                knowledgeBaseID: id, ownerID: principal.userID, name: body.name, description: body.description ?? "", chunking: chunking,
                embeddingModel: embedder.model, now: command.now),
            on: KnowledgeBaseDecider.streamID(id), context: command)
        return try Reply.json(
            try await view(id, result.state, version: result.streamVersion), status: .created, location: "/api/v1/knowledge/bases/\(KnowledgeDTO.id(id))",
            version: result.streamVersion, position: result.append?.checkpoint, context: context)
    }

    @Sendable func show(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let (id, state, version) = try await owned(request, context)
        return try Reply.json(try await view(id, state, version: version), status: .ok, version: version, context: context)
    }

    /// `{max_tokens, overlap_tokens}` → 202: every live document is indexed again with them; the
    /// old chunks stay searchable until each document's new ones replace them.
    @Sendable func changeChunking(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        let (baseID, _, _) = try await owned(request, context)
        let body = try await request.decode(as: Create.Chunking.self, context: context)
        guard let maxTokens = body.maxTokens, let overlapTokens = body.overlapTokens else {
            throw Problem(.badRequest, code: "request.malformed", detail: "give max_tokens and overlap_tokens")
        }
        let command = try CommandContext.from(request, context: context)
        let result = try await bases.handle(
            .changeChunking(ChunkingSettings(maxTokens: maxTokens, overlapTokens: overlapTokens), now: command.now), on: KnowledgeBaseDecider.streamID(baseID),
            context: command, ifMatch: try Reply.ifMatch(request))
        return try Reply.json(
            try await view(baseID, result.state, version: result.streamVersion), status: .accepted, version: result.streamVersion,
            position: result.append?.checkpoint, context: context)
    }

    func view(_ id: UUID, _ state: KnowledgeBaseDecider.State, version: Int64) async throws -> KnowledgeDTO.Base {
        KnowledgeDTO.Base(
            id: KnowledgeDTO.id(id), name: state.name, description: state.description, ownerID: state.ownerID ?? "",
            chunking: .init(maxTokens: state.chunking.maxTokens, overlapTokens: state.chunking.overlapTokens), embeddingModel: state.embeddingModel,
            indexVersion: version, documents: state.liveDocuments)
    }

    /// The base, if it exists and the principal may see it; else 404.
    func owned(_ request: Request, _ context: ChronicleRequestContext) async throws -> (UUID, KnowledgeBaseDecider.State, Int64) {
        let principal = try context.requirePrincipal()
        let id = try Reply.pathID(context, "id", missing: Self.notFound)
        let (state, version) = try await bases.load(KnowledgeBaseDecider.streamID(id).description)
        guard state.exists, principal.mayAccess(owner: state.ownerID ?? "") else { throw Self.notFound }
        return (id, state, version)
    }

    // MARK: Documents

    struct JSONUpload: Decodable {
        var name: String
        var mediaType: String
        var content: String?
        var contentBase64: String?
        var documentID: String?

        enum CodingKeys: String, CodingKey {
            case name, content
            case mediaType = "media_type"
            case contentBase64 = "content_base64"
            case documentID = "document_id"
        }
    }

    /// A document, new or a new version of `document_id`: JSON `{name, media_type, content |
    /// content_base64, document_id?}`, or `multipart/form-data` with a `file` part (its filename
    /// and type) and optional `document_id` and `media_type` fields. 202: indexing follows.
    @Sendable func upload(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        let (baseID, state, _) = try await owned(request, context)
        let upload = try await Self.parseUpload(request, context: context, limit: settings.maxDocumentBytes)
        guard upload.bytes.count <= settings.maxDocumentBytes else {
            throw Problem(.contentTooLarge, code: "knowledge.document_too_large", detail: "a document is at most \(settings.maxDocumentBytes) bytes")
        }
        let mediaType = KnowledgeDTO.mediaType(upload.mediaType, name: upload.name)
        let command = try CommandContext.from(request, context: context)
        let documentID = try upload.documentID.map { text in
            guard let id = UUID(uuidString: text) else {
                throw Problem(.badRequest, code: "knowledge.document_invalid", detail: "document_id must be a document's id")
            }
            return id
        } ?? command.derivedID("knowledge-document")
        let hash = SHA256.hash(data: upload.bytes).map { String(format: "%02x", $0) }.joined()
        let content = KnowledgeDocumentContent(name: upload.name, mediaType: mediaType, contentHash: hash, byteCount: upload.bytes.count)
        // Checked before the bytes are kept, so a refused document leaves nothing behind (the
        // command decides again on the stream as it is when it appends). A new document's id is
        // the server's; document_id names one of this base's documents.
        if upload.documentID != nil, state.documents[documentID] == nil { throw Self.documentNotFound }
        _ = try KnowledgeBaseDecider.decide(.store(documentID: documentID, content: content, now: command.now), state: state)
        let bases = self.bases
        let result = try await storage.storeBlob(knowledgeBase: baseID, sha256: hash, mediaType: mediaType, bytes: upload.bytes) {
            try await bases.handle(.store(documentID: documentID, content: content, now: command.now), on: KnowledgeBaseDecider.streamID(baseID), context: command)
        }
        guard let stored = result.state.documents[documentID] else { throw Self.documentNotFound }
        let view = try await documentView(documentID, stored, chunking: result.state.chunking)
        return try Reply.json(
            view, status: .accepted, location: "/api/v1/knowledge/bases/\(KnowledgeDTO.id(baseID))/documents/\(KnowledgeDTO.id(documentID))",
            version: result.streamVersion, position: result.append?.checkpoint, context: context)
    }

    @Sendable func documents(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let (_, state, version) = try await owned(request, context)
        let (page, pageSize) = try Reply.paging(request)
        let live = state.documents.filter { !$0.value.deleted }.sorted { ($0.value.createdAt, $0.key.uuidString) < ($1.value.createdAt, $1.key.uuidString) }
        var items: [KnowledgeDTO.Document] = []
        for (id, document) in live.dropFirst((page - 1) * pageSize).prefix(pageSize) { items.append(try await documentView(id, document, chunking: state.chunking)) }
        return try Reply.json(
            KnowledgeDTO.Documents(items: items, page: page, pageSize: pageSize, totalCount: live.count, indexVersion: version), status: .ok,
            version: version, context: context)
    }

    @Sendable func document(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let (_, state, version) = try await owned(request, context)
        let documentID = try Reply.pathID(context, "document_id", missing: Self.documentNotFound)
        guard let document = state.documents[documentID], !document.deleted else { throw Self.documentNotFound }
        return try Reply.json(try await documentView(documentID, document, chunking: state.chunking), status: .ok, version: version, context: context)
    }

    @Sendable func delete(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        let (baseID, _, _) = try await owned(request, context)
        let documentID = try Reply.pathID(context, "document_id", missing: Self.documentNotFound)
        let command = try CommandContext.from(request, context: context)
        do {
            let result = try await bases.handle(
                .deleteDocument(documentID: documentID, now: command.now), on: KnowledgeBaseDecider.streamID(baseID), context: command,
                ifMatch: try Reply.ifMatch(request))
            return Response(status: .noContent, headers: [.eTag: "\"\(result.streamVersion)\""])
        } catch let error as DomainError where error.code == .knowledgeDocumentNotFound {
            throw Self.documentNotFound
        }
    }

    /// Cancels the indexing of the document's current version (with the base's current
    /// chunking): the run ends cancelled and nothing of it is searchable (the worker writes no
    /// chunk after it, and takes back what it wrote if the cancel came between its write and its
    /// end). Idempotent: a cancelled run answers as it is; one that ended otherwise is a conflict.
    @Sendable func cancelIndexing(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        let (_, state, _) = try await owned(request, context)
        let documentID = try Reply.pathID(context, "document_id", missing: Self.documentNotFound)
        guard let document = state.documents[documentID], !document.deleted else { throw Self.documentNotFound }
        let run = KnowledgeIndexingDecider.runID(document: documentID, version: document.version, chunking: state.chunking)
        let command = try CommandContext.from(request, context: context)
        let result = try await runs.handle(
            .cancel(.init(runID: run, reason: "cancelled on request", cancelledAt: command.now)),
            on: KnowledgeIndexingDecider.streamID(run), context: command)
        return try Reply.json(
            KnowledgeDTO.Document(id: documentID, document, run: result.state), status: .accepted, version: result.streamVersion,
            position: result.append?.checkpoint, context: context)
    }

    /// A document with the state of its current version's run with the base's current chunking.
    func documentView(_ id: UUID, _ document: KnowledgeBaseDecider.Document, chunking: ChunkingSettings) async throws -> KnowledgeDTO.Document {
        let run = KnowledgeIndexingDecider.runID(document: id, version: document.version, chunking: chunking)
        let (state, _) = try await runs.load(KnowledgeIndexingDecider.streamID(run).description)
        return KnowledgeDTO.Document(id: id, document, run: state)
    }

    // MARK: Search

    struct Search: Decodable {
        var query: String
        var topK: Int?
        var mode: String?

        enum CodingKeys: String, CodingKey {
            case query, mode
            case topK = "top_k"
        }
    }

    /// `{query, top_k?, mode?: hybrid | vector | keyword}`: chunks best first. Hybrid fuses the
    /// keyword and vector rankings by Reciprocal Rank Fusion (k = 60), each cut at 4 × top_k.
    @Sendable func search(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let (baseID, state, version) = try await owned(request, context)
        let body = try await request.decode(as: Search.self, context: context)
        // NUL cannot reach Postgres text; it separates words like any space.
        let query = body.query.replacingOccurrences(of: "\u{0}", with: " ").trimmingCharacters(in: .whitespacesAndNewlines)
        guard !query.isEmpty, query.count <= 2_000 else {
            throw Problem(.badRequest, code: "knowledge.query_invalid", detail: "query must be 1 to 2000 characters")
        }
        let topK = body.topK ?? 5
        guard (1...settings.maxTopK).contains(topK) else {
            throw Problem(.badRequest, code: "knowledge.query_invalid", detail: "top_k must be 1 to \(settings.maxTopK)")
        }
        let mode = body.mode ?? "hybrid"
        guard ["hybrid", "vector", "keyword"].contains(mode) else {
            throw Problem(.badRequest, code: "knowledge.query_invalid", detail: "mode must be hybrid, vector or keyword")
        }
        guard state.embeddingModel == embedder.model || mode == "keyword" else {
            throw Problem(
                .conflict, code: "knowledge.model_mismatch",
                detail: "the base holds vectors of \(state.embeddingModel), and this server embeds with \(embedder.model): search with mode keyword")
        }
        let found = try await retriever.search(baseID, query: query, k: topK, mode: KnowledgeRetriever.Mode(rawValue: mode) ?? .hybrid)
        let results = found.map { hit in
            KnowledgeDTO.Hit(chunk: hit.chunk, score: hit.score, documentName: state.documents[hit.chunk.documentID]?.content.name ?? "")
        }
        return try Reply.json(
            KnowledgeDTO.SearchResult(mode: mode, model: embedder.model, indexVersion: version, results: results), status: .ok, context: context)
    }

    // MARK: Answers

    struct Ask: Decodable {
        var question: String
        var topK: Int?

        enum CodingKeys: String, CodingKey {
            case question
            case topK = "top_k"
        }
    }

    /// `{question, top_k?}` → 202 `{answer_id, status}`; a worker retrieves and answers.
    @Sendable func ask(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        let (baseID, state, _) = try await owned(request, context)
        let body = try await request.decode(as: Ask.self, context: context)
        guard state.embeddingModel == embedder.model else {
            throw Problem(
                .conflict, code: "knowledge.model_mismatch", detail: "the base holds vectors of \(state.embeddingModel), and this server embeds with \(embedder.model)")
        }
        let command = try CommandContext.from(request, context: context)
        let answerID = command.derivedID("knowledge-answer")
        let result = try await answers.handle(
            .request(.init(
                answerID: answerID, knowledgeBaseID: baseID, ownerID: principal.userID, question: body.question.replacingOccurrences(of: "\u{0}", with: " "),
                topK: body.topK ?? 5, requestedAt: command.now)),
            on: KnowledgeAnswerDecider.streamID(answerID), context: command)
        let id = KnowledgeDTO.id(answerID)
        return try Reply.json(
            JSONValue.object(["answer_id": .string(id), "status": .string(result.state.status.rawValue)]), status: .accepted,
            location: "/api/v1/knowledge/bases/\(KnowledgeDTO.id(baseID))/answers/\(id)", version: result.streamVersion,
            position: result.append?.checkpoint, context: context)
    }

    /// The answer as its stream tells it, each citation checked against the index now: one whose
    /// chunk changed or left the index is stale, and so is the answer.
    @Sendable func answer(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let (baseID, _, indexVersion) = try await owned(request, context)
        let notFound = Problem(.notFound, code: "knowledge.answer_not_found", detail: "no such answer")
        let answerID = try Reply.pathID(context, "answer_id", missing: notFound)
        let (state, version) = try await answers.load(KnowledgeAnswerDecider.streamID(answerID).description)
        guard let asked = state.request, asked.knowledgeBaseID == baseID else { throw notFound }
        var current: [UUID: FoundChunk] = [:]
        if let completed = state.completed { current = try await storage.chunks(completed.retrieved.map(\.chunkID)) }
        return try Reply.json(
            KnowledgeDTO.Answer(id: answerID, state, current: current, indexVersion: indexVersion), status: .ok, version: version, context: context)
    }
}

extension KnowledgeController {
    /// Its routes, under `/api/v1/knowledge`.
    public var mount: RouteMount { RouteMount("knowledge", add: { addRoutes(to: $0) }) }
}
