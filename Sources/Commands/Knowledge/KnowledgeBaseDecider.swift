import Events
import Foundation

/// One knowledge base and its documents (stream `knowledge-<id>`). The stream's version is the
/// base's index version: each stored or deleted document moves it, and nothing else does.
///
/// A document is stored as version 1, then replaced by versions 2, 3, ...; storing the bytes the
/// latest version already has appends nothing, so a retried upload is harmless. Deleting is
/// idempotent, and a deleted document's id is never reused (a citation of it must stay dead).
public enum KnowledgeBaseDecider: Decider {
    public static let mediaTypes: Set<String> = ["text/plain", "text/markdown", "text/html", "application/pdf"]
    public static let maxDocuments = 10_000
    public static let nameLimit = 200
    public static let descriptionLimit = 2_000
    public static let documentNameLimit = 255

    public enum Command: Sendable, Equatable {
        case create(
            knowledgeBaseID: UUID, ownerID: String, name: String, description: String, chunking: ChunkingSettings, embeddingModel: String,
            now: Date)
        case store(documentID: UUID, content: KnowledgeDocumentContent, now: Date)
        case deleteDocument(documentID: UUID, now: Date)
        case changeChunking(ChunkingSettings, now: Date)
    }

    public struct Document: Sendable, Equatable {
        public var version: Int
        public var content: KnowledgeDocumentContent
        public var deleted: Bool
        /// When version 1 was stored, and when the current version was.
        public var createdAt: Date
        public var storedAt: Date
    }

    public struct State: Sendable, Equatable {
        public var knowledgeBaseID: UUID?
        public var ownerID: String?
        public var name = ""
        public var description = ""
        public var chunking = ChunkingSettings.default
        public var embeddingModel = ""
        public var documents: [UUID: Document] = [:]
        public var liveDocuments = 0

        public var exists: Bool { knowledgeBaseID != nil }
    }

    public static let category = "knowledge"
    public static let initialState = State()

    public static func streamID(_ knowledgeBaseID: UUID) -> StreamID { StreamID(category: category, id: knowledgeBaseID) }

    /// Folded bases kept between loads: a base's stream grows with every document change and is
    /// read on every search, upload, answer and indexing step, so each load folds only the events
    /// after the kept state (one short read when nothing changed), not the whole stream.
    public static func memo() -> StateMemo<KnowledgeBaseDecider> { StateMemo(capacity: 256) }

    public static func decide(_ command: Command, state: State) throws -> [KnowledgeEvent] {
        switch command {
        case .create(let id, let ownerID, let name, let description, let chunking, let embeddingModel, let now):
            guard state.knowledgeBaseID == nil else { throw DomainError(.conflict, code: .knowledgeBaseExists, "knowledge base \(id) already exists") }
            let name = name.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !name.isEmpty, name.count <= nameLimit else {
                throw DomainError(.invalid, code: .knowledgeBaseInvalid, "name must be 1 to \(nameLimit) characters")
            }
            guard description.count <= descriptionLimit else {
                throw DomainError(.invalid, code: .knowledgeBaseInvalid, "description must be at most \(descriptionLimit) characters")
            }
            if let problem = chunking.problem { throw DomainError(.invalid, code: .knowledgeBaseInvalid, problem) }
            return [.created(KnowledgeBaseCreated(
                knowledgeBaseID: id, ownerID: ownerID, name: name, description: description, chunking: chunking,
                embeddingModel: embeddingModel, createdAt: now))]

        case .store(let documentID, let content, let now):
            let id = try require(state)
            try check(content)
            if let document = state.documents[documentID] {
                guard !document.deleted else {
                    throw DomainError(.conflict, code: .knowledgeDocumentDeleted, "document \(documentID) was deleted; store it under a new id")
                }
                if document.content == content { return [] }
                return [.stored(KnowledgeDocumentStored(
                    knowledgeBaseID: id, documentID: documentID, version: document.version + 1, content: content,
                    replacedContentHash: document.content.contentHash, storedAt: now))]
            }
            guard state.liveDocuments < maxDocuments else {
                throw DomainError(.conflict, code: .knowledgeBaseFull, "a knowledge base holds at most \(maxDocuments) documents")
            }
            return [.stored(KnowledgeDocumentStored(knowledgeBaseID: id, documentID: documentID, version: 1, content: content, storedAt: now))]

        case .changeChunking(let chunking, let now):
            let id = try require(state)
            if let problem = chunking.problem { throw DomainError(.invalid, code: .knowledgeBaseInvalid, problem) }
            if chunking == state.chunking { return [] }
            return [.chunkingChanged(KnowledgeBaseChunkingChanged(knowledgeBaseID: id, chunking: chunking, changedAt: now))]

        case .deleteDocument(let documentID, let now):
            let id = try require(state)
            guard let document = state.documents[documentID] else {
                throw DomainError(.notFound, code: .knowledgeDocumentNotFound, "no such document")
            }
            if document.deleted { return [] }
            return [.deleted(KnowledgeDocumentDeleted(knowledgeBaseID: id, documentID: documentID, version: document.version, deletedAt: now))]
        }
    }

    public static func evolve(_ state: State, _ event: KnowledgeEvent) -> State {
        var state = state
        switch event {
        case .created(let created):
            state.knowledgeBaseID = created.knowledgeBaseID
            state.ownerID = created.ownerID
            state.name = created.name
            state.description = created.description
            state.chunking = created.chunking
            state.embeddingModel = created.embeddingModel
        case .stored(let stored):
            if state.documents[stored.documentID] == nil { state.liveDocuments += 1 }
            state.documents[stored.documentID] = Document(
                version: stored.version, content: stored.content, deleted: false, createdAt: state.documents[stored.documentID]?.createdAt ?? stored.storedAt,
                storedAt: stored.storedAt)
        case .deleted(let deleted):
            if state.documents[deleted.documentID]?.deleted == false { state.liveDocuments -= 1 }
            state.documents[deleted.documentID]?.deleted = true
        case .chunkingChanged(let changed):
            state.chunking = changed.chunking
        }
        return state
    }

    /// Whether a live document's current version names these bytes.
    public static func uses(_ state: State, contentHash: String) -> Bool {
        state.documents.values.contains { !$0.deleted && $0.content.contentHash == contentHash }
    }

    static func require(_ state: State) throws -> UUID {
        guard let id = state.knowledgeBaseID else { throw notFound }
        return id
    }

    static func check(_ content: KnowledgeDocumentContent) throws {
        guard mediaTypes.contains(content.mediaType) else {
            throw DomainError(
                .invalid, code: .knowledgeMediaTypeUnsupported,
                "media type \(content.mediaType) is not one of \(mediaTypes.sorted().joined(separator: ", "))")
        }
        let name = content.name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty, content.name.count <= documentNameLimit else {
            throw DomainError(.invalid, code: .knowledgeDocumentInvalid, "a document's name must be 1 to \(documentNameLimit) characters")
        }
        guard content.byteCount > 0 else { throw DomainError(.invalid, code: .knowledgeDocumentInvalid, "a document may not be empty") }
        guard content.contentHash.count == 64, content.contentHash.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
            throw DomainError(.invalid, code: .knowledgeDocumentInvalid, "a document's hash is a lowercase hex sha256")
        }
    }

    public static let notFound = DomainError(.notFound, code: .knowledgeBaseNotFound, "no such knowledge base")
}
