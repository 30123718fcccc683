import Foundation

/// How a knowledge base cuts its documents into chunks. Part of every chunk's id, so a change of
/// settings makes new chunks, never a mix of old and new.
public struct ChunkingSettings: Codable, Sendable, Equatable, Hashable {
    /// The most tokens a chunk holds (its heading path not counted).
    public var maxTokens: Int
    /// Tokens of the previous chunk's end repeated at the start of the next, within one section.
    public var overlapTokens: Int

    /// About 512 tokens with 12.5 % overlap.
    public static let `default` = ChunkingSettings(maxTokens: 512, overlapTokens: 64)
    public static let maxTokensRange = 32...4096

    public init(maxTokens: Int, overlapTokens: Int) {
        self.maxTokens = maxTokens
        self.overlapTokens = overlapTokens
    }

    /// Why these settings are refused, or nil. Overlap is at most half a chunk, so every chunk
    /// moves the text forward.
    public var problem: String? {
        if !Self.maxTokensRange.contains(maxTokens) {
            return "max_tokens must be \(Self.maxTokensRange.lowerBound) to \(Self.maxTokensRange.upperBound)"
        }
        if overlapTokens < 0 || overlapTokens > maxTokens / 2 { return "overlap_tokens must be 0 to half of max_tokens" }
        return nil
    }

    /// A short stable name of these settings, for chunk ids and records.
    public var fingerprint: String { "bpe-\(maxTokens)-\(overlapTokens)-v1" }
}

/// A knowledge base was created (stream `knowledge-<id>`). Its stream version is its index
/// version: every document change moves it, and an answer records the one it was given.
public struct KnowledgeBaseCreated: DomainEvent {
    public static let eventType = "KnowledgeBaseCreated"

    public var knowledgeBaseID: UUID
    public var ownerID: String
    public var name: String
    public var description: String
    public var chunking: ChunkingSettings
    /// The embedder whose vectors this base holds; a base never mixes two models.
    public var embeddingModel: String
    public var createdAt: Date

    public init(
        knowledgeBaseID: UUID, ownerID: String, name: String, description: String, chunking: ChunkingSettings, embeddingModel: String,
        createdAt: Date
    ) {
        self.knowledgeBaseID = knowledgeBaseID
        self.ownerID = ownerID
        self.name = name
        self.description = description
        self.chunking = chunking
        self.embeddingModel = embeddingModel
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case knowledgeBaseID = "knowledgeBaseId"
        case ownerID = "ownerId"
        case name, description, chunking, embeddingModel, createdAt
    }
}

/// What a document version is: its bytes live in the blob table under `contentHash` (sha256),
/// never in the log.
public struct KnowledgeDocumentContent: Codable, Sendable, Equatable {
    public var name: String
    /// `text/plain`, `text/markdown`, `text/html` or `application/pdf`.
    public var mediaType: String
    public var contentHash: String
    public var byteCount: Int

    public init(name: String, mediaType: String, contentHash: String, byteCount: Int) {
        self.name = name
        self.mediaType = mediaType
        self.contentHash = contentHash
        self.byteCount = byteCount
    }
}

/// A document was added (version 1) or replaced by a new version (2, 3, ...).
public struct KnowledgeDocumentStored: DomainEvent {
    public static let eventType = "KnowledgeDocumentStored"

    public var knowledgeBaseID: UUID
    public var documentID: UUID
    public var version: Int
    public var content: KnowledgeDocumentContent
    /// The hash of the version this one replaced (nil for version 1): its bytes are removed once
    /// no version of the base names them.
    public var replacedContentHash: String?
    public var storedAt: Date

    public init(
        knowledgeBaseID: UUID, documentID: UUID, version: Int, content: KnowledgeDocumentContent, replacedContentHash: String? = nil, storedAt: Date
    ) {
        self.knowledgeBaseID = knowledgeBaseID
        self.documentID = documentID
        self.version = version
        self.content = content
        self.replacedContentHash = replacedContentHash
        self.storedAt = storedAt
    }

    enum CodingKeys: String, CodingKey {
        case knowledgeBaseID = "knowledgeBaseId"
        case documentID = "documentId"
        case version, content, replacedContentHash, storedAt
    }
}

/// A document was deleted: its chunks leave the index and its blob is removed.
public struct KnowledgeDocumentDeleted: DomainEvent {
    public static let eventType = "KnowledgeDocumentDeleted"

    public var knowledgeBaseID: UUID
    public var documentID: UUID
    /// The version deleted (the last stored).
    public var version: Int
    public var deletedAt: Date

    public init(knowledgeBaseID: UUID, documentID: UUID, version: Int, deletedAt: Date) {
        self.knowledgeBaseID = knowledgeBaseID
        self.documentID = documentID
        self.version = version
        self.deletedAt = deletedAt
    }

    enum CodingKeys: String, CodingKey {
        case knowledgeBaseID = "knowledgeBaseId"
        case documentID = "documentId"
        case version, deletedAt
    }
}

/// A base's chunking settings changed: every live document is indexed again with them, and the
/// chunks cut with the old ones leave the index as each document's new ones arrive.
public struct KnowledgeBaseChunkingChanged: DomainEvent {
    public static let eventType = "KnowledgeBaseChunkingChanged"

    public var knowledgeBaseID: UUID
    public var chunking: ChunkingSettings
    public var changedAt: Date

    public init(knowledgeBaseID: UUID, chunking: ChunkingSettings, changedAt: Date) {
        self.knowledgeBaseID = knowledgeBaseID
        self.chunking = chunking
        self.changedAt = changedAt
    }

    enum CodingKeys: String, CodingKey {
        case knowledgeBaseID = "knowledgeBaseId"
        case chunking, changedAt
    }
}

/// The events of one knowledge base and its documents (stream `knowledge-<id>`).
public enum KnowledgeEvent: EventFamily, Equatable {
    public static var registry: EventRegistry { .knowledge }

    case created(KnowledgeBaseCreated)
    case stored(KnowledgeDocumentStored)
    case deleted(KnowledgeDocumentDeleted)
    case chunkingChanged(KnowledgeBaseChunkingChanged)

    public var payload: any DomainEvent {
        switch self {
        case .created(let event): event
        case .stored(let event): event
        case .deleted(let event): event
        case .chunkingChanged(let event): event
        }
    }

    public init?(payload: any DomainEvent) {
        switch payload {
        case let event as KnowledgeBaseCreated: self = .created(event)
        case let event as KnowledgeDocumentStored: self = .stored(event)
        case let event as KnowledgeDocumentDeleted: self = .deleted(event)
        case let event as KnowledgeBaseChunkingChanged: self = .chunkingChanged(event)
        default: return nil
        }
    }
}

extension EventRegistry {
    /// The stored event types of the Knowledge module.
    public static let knowledge: EventRegistry = {
        var registry = EventRegistry()
        registry.register(KnowledgeBaseCreated.self)
        registry.register(KnowledgeDocumentStored.self)
        registry.register(KnowledgeDocumentDeleted.self)
        registry.register(KnowledgeBaseChunkingChanged.self)
        registry.register(KnowledgeIndexingStarted.self)
        registry.register(KnowledgeIndexingProgressed.self)
        registry.register(KnowledgeIndexingTimedOut.self)
        registry.register(KnowledgeIndexingCompleted.self)
        registry.register(KnowledgeIndexingFailed.self)
        registry.register(KnowledgeIndexingCancelled.self)
        registry.register(KnowledgeAnswerRequested.self)
        registry.register(KnowledgeAnswerCompleted.self)
        registry.register(KnowledgeAnswerFailed.self)
        return registry
    }()
}
