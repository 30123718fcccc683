import Foundation

/// A question asked of a knowledge base (stream `knowledgeanswer-<id>`); the `knowledge.answer`
/// worker retrieves, asks the model (or answers extractively offline) and records the answer with
/// its citations, as of the base's index version.
public struct KnowledgeAnswerRequested: DomainEvent {
    public static let eventType = "KnowledgeAnswerRequested"

    public var answerID: UUID
    public var knowledgeBaseID: UUID
    public var ownerID: String
    public var question: String
    /// Chunks retrieved and given to the model.
    public var topK: Int
    public var requestedAt: Date

    public init(answerID: UUID, knowledgeBaseID: UUID, ownerID: String, question: String, topK: Int, requestedAt: Date) {
        self.answerID = answerID
        self.knowledgeBaseID = knowledgeBaseID
        self.ownerID = ownerID
        self.question = question
        self.topK = topK
        self.requestedAt = requestedAt
    }

    enum CodingKeys: String, CodingKey {
        case answerID = "answerId"
        case knowledgeBaseID = "knowledgeBaseId"
        case ownerID = "ownerId"
        case question, topK, requestedAt
    }
}

/// A chunk as it was when an answer was given: what a later read compares to mark it stale.
public struct KnowledgeChunkReference: Codable, Sendable, Equatable {
    /// The 1-based number the chunk had in the prompt (`[1]`, `[2]`, ...).
    public var marker: Int
    public var chunkID: UUID
    public var documentID: UUID
    public var documentVersion: Int
    public var start: Int
    public var end: Int
    public var contentHash: String

    public init(marker: Int, chunkID: UUID, documentID: UUID, documentVersion: Int, start: Int, end: Int, contentHash: String) {
        self.marker = marker
        self.chunkID = chunkID
        self.documentID = documentID
        self.documentVersion = documentVersion
        self.start = start
        self.end = end
        self.contentHash = contentHash
    }

    enum CodingKeys: String, CodingKey {
        case marker
        case chunkID = "chunkId"
        case documentID = "documentId"
        case documentVersion, start, end, contentHash
    }
}

/// The answer: its text with `[n]` markers, the chunks it cites (only ones it was given), the
/// chunks it was given, and any marker it wrote that named no given chunk (dropped from the text).
public struct KnowledgeAnswerCompleted: DomainEvent {
    public static let eventType = "KnowledgeAnswerCompleted"

    public var answerID: UUID
    public var answer: String
    /// The model that wrote it; the offline extractive answerer says so in its name.
    public var model: String
    public var embeddingModel: String
    /// The base's index version the retrieval saw.
    public var indexVersion: Int64
    public var citations: [KnowledgeChunkReference]
    public var retrieved: [KnowledgeChunkReference]
    public var droppedMarkers: [String]
    public var completedAt: Date

    public init(
        answerID: UUID, answer: String, model: String, embeddingModel: String, indexVersion: Int64, citations: [KnowledgeChunkReference],
        retrieved: [KnowledgeChunkReference], droppedMarkers: [String], completedAt: Date
    ) {
        self.answerID = answerID
        self.answer = answer
        self.model = model
        self.embeddingModel = embeddingModel
        self.indexVersion = indexVersion
        self.citations = citations
        self.retrieved = retrieved
        self.droppedMarkers = droppedMarkers
        self.completedAt = completedAt
    }

    enum CodingKeys: String, CodingKey {
        case answerID = "answerId"
        case answer, model, embeddingModel, indexVersion, citations, retrieved, droppedMarkers, completedAt
    }
}

/// No answer: why (the model kept failing, work given up).
public struct KnowledgeAnswerFailed: DomainEvent {
    public static let eventType = "KnowledgeAnswerFailed"

    public var answerID: UUID
    public var reason: String
    public var failedAt: Date

    public init(answerID: UUID, reason: String, failedAt: Date) {
        self.answerID = answerID
        self.reason = reason
        self.failedAt = failedAt
    }

    enum CodingKeys: String, CodingKey {
        case answerID = "answerId"
        case reason, failedAt
    }
}

/// The events of one answer.
public enum KnowledgeAnswerEvent: EventFamily, Equatable {
    public static var registry: EventRegistry { .knowledge }

    case requested(KnowledgeAnswerRequested)
    case completed(KnowledgeAnswerCompleted)
    case failed(KnowledgeAnswerFailed)

    public var payload: any DomainEvent {
        switch self {
        case .requested(let event): event
        case .completed(let event): event
        case .failed(let event): event
        }
    }

    public init?(payload: any DomainEvent) {
        switch payload {
        case let event as KnowledgeAnswerRequested: self = .requested(event)
        case let event as KnowledgeAnswerCompleted: self = .completed(event)
        case let event as KnowledgeAnswerFailed: self = .failed(event)
        default: return nil
        }
    }
}
