import Foundation

/// An indexing run of one document version with one chunking (stream `knowledgeindex-<run id>`,
/// the run id derived from the document, its version and the chunker's settings). Its state is these events: started, completed, failed,
/// cancelled, timed out. A document version that was stored and has no run yet is queued.

/// The worker took the run (its first delivery, or the first after a crash).
public struct KnowledgeIndexingStarted: DomainEvent {
    public static let eventType = "KnowledgeIndexingStarted"

    public var runID: UUID
    public var knowledgeBaseID: UUID
    public var documentID: UUID
    public var version: Int
    /// The chunker's settings and the embedder's model the run uses.
    public var chunking: ChunkingSettings
    public var embeddingModel: String
    public var startedAt: Date

    public init(
        runID: UUID, knowledgeBaseID: UUID, documentID: UUID, version: Int, chunking: ChunkingSettings, embeddingModel: String, startedAt: Date
    ) {
        self.runID = runID
        self.knowledgeBaseID = knowledgeBaseID
        self.documentID = documentID
        self.version = version
        self.chunking = chunking
        self.embeddingModel = embeddingModel
        self.startedAt = startedAt
    }

    enum CodingKeys: String, CodingKey {
        case runID = "runId"
        case knowledgeBaseID = "knowledgeBaseId"
        case documentID = "documentId"
        case version, chunking, embeddingModel, startedAt
    }
}

/// The document version's chunks are in the index, and older versions' are gone.
public struct KnowledgeIndexingCompleted: DomainEvent {
    public static let eventType = "KnowledgeIndexingCompleted"

    public var runID: UUID
    public var chunks: Int
    /// Chunks whose vector was computed by this run; the rest came from the embedding cache.
    public var embedded: Int
    /// Characters of text extracted from the document.
    public var characters: Int
    public var completedAt: Date
    /// Input tokens of the texts this run embedded, as the embedder counted them (nil when it
    /// does not say, and in events recorded before it was kept).
    public var embeddingTokens: Int?
    /// What they cost, in US dollars, by the price table (0 for the offline embedder or an
    /// unknown model).
    public var embeddingCost: Double?

    public init(
        runID: UUID, chunks: Int, embedded: Int, characters: Int, completedAt: Date, embeddingTokens: Int? = nil, embeddingCost: Double? = nil
    ) {
        self.runID = runID
        self.chunks = chunks
        self.embedded = embedded
        self.characters = characters
        self.completedAt = completedAt
        self.embeddingTokens = embeddingTokens
        self.embeddingCost = embeddingCost
    }

    enum CodingKeys: String, CodingKey {
        case runID = "runId"
        case chunks, embedded, characters, completedAt, embeddingTokens, embeddingCost
    }
}

/// The run moved on: chunks embedded so far (from the cache or the embedder) of the total. What
/// the watchdog reads as a sign of life.
public struct KnowledgeIndexingProgressed: DomainEvent {
    public static let eventType = "KnowledgeIndexingProgressed"

    public var runID: UUID
    public var done: Int
    public var total: Int
    public var progressedAt: Date

    public init(runID: UUID, done: Int, total: Int, progressedAt: Date) {
        self.runID = runID
        self.done = done
        self.total = total
        self.progressedAt = progressedAt
    }

    enum CodingKeys: String, CodingKey {
        case runID = "runId"
        case done, total, progressedAt
    }
}

/// The run made no progress for longer than allowed (its worker was lost, its message with it):
/// the watchdog ended it, so it can never stay `running`.
public struct KnowledgeIndexingTimedOut: DomainEvent {
    public static let eventType = "KnowledgeIndexingTimedOut"

    public var runID: UUID
    public var reason: String
    public var timedOutAt: Date

    public init(runID: UUID, reason: String, timedOutAt: Date) {
        self.runID = runID
        self.reason = reason
        self.timedOutAt = timedOutAt
    }

    enum CodingKeys: String, CodingKey {
        case runID = "runId"
        case reason, timedOutAt
    }
}

/// The run ended without an index: the reason says why (unreadable document, no text, an
/// embedder that kept failing, work given up).
public struct KnowledgeIndexingFailed: DomainEvent {
    public static let eventType = "KnowledgeIndexingFailed"

    public var runID: UUID
    public var reason: String
    public var failedAt: Date

    public init(runID: UUID, reason: String, failedAt: Date) {
        self.runID = runID
        self.reason = reason
        self.failedAt = failedAt
    }

    enum CodingKeys: String, CodingKey {
        case runID = "runId"
        case reason, failedAt
    }
}

/// The run ended because its document version is no longer current (deleted, or replaced by a
/// newer version): it left no chunk behind.
public struct KnowledgeIndexingCancelled: DomainEvent {
    public static let eventType = "KnowledgeIndexingCancelled"

    public var runID: UUID
    public var reason: String
    public var cancelledAt: Date

    public init(runID: UUID, reason: String, cancelledAt: Date) {
        self.runID = runID
        self.reason = reason
        self.cancelledAt = cancelledAt
    }

    enum CodingKeys: String, CodingKey {
        case runID = "runId"
        case reason, cancelledAt
    }
}

/// The events of one indexing run.
public enum KnowledgeIndexingEvent: EventFamily, Equatable {
    public static var registry: EventRegistry { .knowledge }

    case started(KnowledgeIndexingStarted)
    case progressed(KnowledgeIndexingProgressed)
    case completed(KnowledgeIndexingCompleted)
    case failed(KnowledgeIndexingFailed)
    case cancelled(KnowledgeIndexingCancelled)
    case timedOut(KnowledgeIndexingTimedOut)

    public var payload: any DomainEvent {
        switch self {
        case .started(let event): event
        case .progressed(let event): event
        case .timedOut(let event): event
        case .completed(let event): event
        case .failed(let event): event
        case .cancelled(let event): event
        }
    }

    public init?(payload: any DomainEvent) {
        switch payload {
        case let event as KnowledgeIndexingStarted: self = .started(event)
        case let event as KnowledgeIndexingProgressed: self = .progressed(event)
        case let event as KnowledgeIndexingTimedOut: self = .timedOut(event)
        case let event as KnowledgeIndexingCompleted: self = .completed(event)
        case let event as KnowledgeIndexingFailed: self = .failed(event)
        case let event as KnowledgeIndexingCancelled: self = .cancelled(event)
        default: return nil
        }
    }
}

extension IntegrationContract {
    /// What the Knowledge module publishes: each stored or deleted document version as work for
    /// the indexer (`knowledge.index`), each question for the answerer (`knowledge.answer`), and
    /// bases, runs' ends and answers on `events`.
    public static let knowledge: [IntegrationContract] = [
        IntegrationContract(eventType: KnowledgeDocumentStored.eventType, exchange: "knowledge.index", routingKey: "knowledge.index", kind: .workMessage),
        IntegrationContract(eventType: KnowledgeDocumentDeleted.eventType, exchange: "knowledge.index", routingKey: "knowledge.index", kind: .workMessage),
        IntegrationContract(
            eventType: KnowledgeBaseChunkingChanged.eventType, exchange: "knowledge.index", routingKey: "knowledge.index", kind: .workMessage),
        IntegrationContract(eventType: KnowledgeBaseCreated.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "knowledge.created"),
        IntegrationContract(
            eventType: KnowledgeIndexingCompleted.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "knowledge.indexing.completed"),
        IntegrationContract(
            eventType: KnowledgeIndexingFailed.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "knowledge.indexing.failed"),
        IntegrationContract(eventType: KnowledgeAnswerRequested.eventType, exchange: "knowledge.answer", routingKey: "knowledge.answer", kind: .workMessage),
        IntegrationContract(
            eventType: KnowledgeAnswerCompleted.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "knowledge.answer.completed"),
        IntegrationContract(eventType: KnowledgeAnswerFailed.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "knowledge.answer.failed"),
    ]
}
