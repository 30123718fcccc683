import Commands
import Crypto
import Events
import Foundation
import Logging

/// Indexes document versions handed out through `knowledge.index` (each `KnowledgeDocumentStored`
/// and `KnowledgeDocumentDeleted`): extract, chunk, embed (through the cache), store. Every step
/// can be repeated: a run's stream starts once and ends once, its chunk ids are fixed by
/// (document, version, chunker settings, ordinal), and its chunks are written only while the
/// version is still the document's current one, under the document's lock, which a deletion also
/// takes. So a killed worker's redelivered run writes the same rows, and a document deleted
/// mid-run leaves no chunk behind.
public struct KnowledgeIndexWorker: Sendable {
    /// Who the worker's events say caused them.
    public static let workerUserID = "system:knowledge-indexer"
    /// Texts embedded per call.
    public static let embeddingBatch = 64

    let bases: CommandHandler<KnowledgeBaseDecider>
    let runs: CommandHandler<KnowledgeIndexingDecider>
    let storage: any KnowledgeStorage
    let embedder: any Embedder
    let extract: @Sendable (Data, String) async throws -> String
    let countTokens: @Sendable (Substring) -> Int
    /// A run silent this long is timed out by the watchdog; progress is recorded at most every
    /// `progressEvery` while it embeds.
    let stallAfter: Duration
    let progressEvery: Duration
    /// What embedding tokens cost (the llm module's table).
    let prices: ModelPrices
    let logger: Logger

    /// A reason the run fails at once, with no retry (the document itself is the problem).
    public struct Unindexable: Error, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    public init(
        store: any EventStore, storage: any KnowledgeStorage, embedder: any Embedder,
        extract: @escaping @Sendable (Data, String) async throws -> String, countTokens: @escaping @Sendable (Substring) -> Int = Chunker.estimateTokens,
        stallAfter: Duration = .seconds(300), progressEvery: Duration = .seconds(10), prices: ModelPrices = .defaults, logger: Logger
    ) {
        self.prices = prices
        self.stallAfter = stallAfter
        self.progressEvery = progressEvery
        bases = CommandHandler(store: store, memo: KnowledgeBaseDecider.memo())
        runs = CommandHandler(store: store)
        self.storage = storage
        self.embedder = embedder
        self.extract = extract
        self.countTokens = countTokens
        self.logger = logger
    }

    struct Target {
        var knowledgeBaseID: UUID
        var documentID: UUID
        var version: Int
        /// The settings the run cuts with: the base's when the message is handled.
        var chunking = ChunkingSettings.default
        var replacedContentHash: String?
        var runID: UUID { KnowledgeIndexingDecider.runID(document: documentID, version: version, chunking: chunking) }
    }

    static func base(_ message: IntegrationMessage) throws -> UUID {
        guard let base = message.data["knowledge_base_id"]?.stringValue.flatMap(UUID.init(uuidString:)) else {
            throw DomainError(.invalid, code: .knowledgeMessageMalformed, "the work message has no knowledge base")
        }
        return base
    }

    static func target(_ message: IntegrationMessage) throws -> Target {
        guard let document = message.data["document_id"]?.stringValue.flatMap(UUID.init(uuidString:)),
            case .number(let version)? = message.data["version"]
        else { throw DomainError(.invalid, code: .knowledgeMessageMalformed, "the work message has no document or version") }
        return Target(
            knowledgeBaseID: try base(message), documentID: document, version: Int(version),
            replacedContentHash: message.data["replaced_content_hash"]?.stringValue)
    }

    public func handle(_ item: WorkItem) async throws {
        let message = try EventCoding.decode(IntegrationMessage.self, from: item.body)
        switch message.eventType {
        case KnowledgeDocumentDeleted.eventType: try await removed(try Self.target(message), cause: message)
        case KnowledgeDocumentStored.eventType: try await index(try Self.target(message), cause: message)
        case KnowledgeBaseChunkingChanged.eventType: try await reindex(try Self.base(message), cause: message)
        default: return
        }
    }

    /// The worker's give-up hook: the run ends failed, saying so.
    public func giveUp(_ item: WorkItem, after error: any Error) async throws {
        guard let message = try? EventCoding.decode(IntegrationMessage.self, from: item.body), message.eventType == KnowledgeDocumentStored.eventType,
            var target = try? Self.target(message)
        else { return }
        let (base, _) = try await bases.load(KnowledgeBaseDecider.streamID(target.knowledgeBaseID).description)
        target.chunking = base.chunking
        try await end(target, .fail(.init(
            runID: target.runID, reason: "indexing was given up after \(item.attempt) tries: \(error)", failedAt: Date())), cause: message)
    }

    // MARK: A stored version

    /// Indexes the version, then removes the bytes it replaced if nothing names them any more
    /// (whether this run completed, or was overtaken by a newer version).
    func index(_ requested: Target, cause: IntegrationMessage) async throws {
        try await run(requested, cause: cause)
        if let replaced = requested.replacedContentHash { try await removeBlobIfUnused(requested.knowledgeBaseID, replaced) }
    }

    func run(_ requested: Target, cause: IntegrationMessage) async throws {
        let (base, _) = try await bases.load(KnowledgeBaseDecider.streamID(requested.knowledgeBaseID).description)
        var cutting = requested
        cutting.chunking = base.chunking
        let target = cutting
        guard let document = base.documents[target.documentID] else { return }
        if let reason = Self.notCurrent(document, target.version) {
            try await end(target, .cancel(.init(runID: target.runID, reason: reason, cancelledAt: Date())), cause: cause)
            return
        }
        let (run, _) = try await runs.load(KnowledgeIndexingDecider.streamID(target.runID).description)
        if run.status == .cancelled {
            // Cancelled on request (a cancel for any other reason leaves the version not current):
            // a write that came before the cancel, by this delivery or a lost one, is taken back.
            try await withdraw(target)
            return
        }
        guard run.status == .none || run.status == .running else { return }
        if run.status == .none {
            try await end(target, .start(.init(
                runID: target.runID, knowledgeBaseID: target.knowledgeBaseID, documentID: target.documentID, version: target.version,
                chunking: target.chunking, embeddingModel: embedder.model, startedAt: Date())), cause: cause)
        }
        do {
            let outcome = try await build(target, document: document.content, embeddingModel: base.embeddingModel, cause: cause)
            let written = try await storage.replaceChunks(
                knowledgeBase: target.knowledgeBaseID, document: target.documentID, version: target.version, model: embedder.model,
                chunks: outcome.chunks, current: {
                    guard try await self.isCurrent(target) else { return false }
                    return try await self.isRunning(target)
                })
            if written {
                let completed = try await end(target, .complete(.init(
                    runID: target.runID, chunks: outcome.chunks.count, embedded: outcome.embedded, characters: outcome.characters, completedAt: Date(),
                    embeddingTokens: outcome.tokens,
                    embeddingCost: outcome.tokens.map { prices.cost(of: TokenUsage(promptTokens: $0, completionTokens: 0), model: embedder.model) })),
                    cause: cause)
                // Cancelled between the write and its end: what it wrote is taken back.
                if !completed, try await runs.load(KnowledgeIndexingDecider.streamID(target.runID).description).0.status == .cancelled {
                    try await withdraw(target)
                    return
                }
                logger.info("knowledge document indexed", metadata: [
                    "document.id": "\(target.documentID)", "version": "\(target.version)", "chunks": "\(outcome.chunks.count)",
                    "embedded": "\(outcome.embedded)",
                ])
            } else {
                try await end(target, .cancel(.init(
                    runID: target.runID, reason: "the version or the chunking changed before its chunks were written", cancelledAt: Date())), cause: cause)
            }
        } catch is RunEnded {
            if try await runs.load(KnowledgeIndexingDecider.streamID(target.runID).description).0.status == .cancelled { try await withdraw(target) }
        } catch let unindexable as Unindexable {
            // A version overtaken meanwhile (its bytes may be gone with it) is cancelled, not failed.
            if try await !isCurrent(target) {
                try await end(target, .cancel(.init(runID: target.runID, reason: "the version or the chunking changed while it was indexed", cancelledAt: Date())), cause: cause)
            } else {
                try await end(target, .fail(.init(runID: target.runID, reason: unindexable.description, failedAt: Date())), cause: cause)
            }
        }
    }

    /// New chunking settings: every live document again, one after the other (a redelivery skips
    /// the runs that ended).
    func reindex(_ knowledgeBase: UUID, cause: IntegrationMessage) async throws {
        let (base, _) = try await bases.load(KnowledgeBaseDecider.streamID(knowledgeBase).description)
        for (id, document) in base.documents.sorted(by: { $0.key.uuidString < $1.key.uuidString }) where !document.deleted {
            try await index(Target(knowledgeBaseID: knowledgeBase, documentID: id, version: document.version), cause: cause)
        }
    }

    struct Outcome {
        var chunks: [IndexedChunk]
        var embedded: Int
        var characters: Int
        /// Input tokens the embedder counted for what this run embedded (nil if it did not say).
        var tokens: Int?
    }

    func build(_ target: Target, document: KnowledgeDocumentContent, embeddingModel: String, cause: IntegrationMessage) async throws -> Outcome {
        let chunking = target.chunking
        guard embeddingModel == embedder.model else {
            throw Unindexable("the base holds vectors of \(embeddingModel), and this indexer embeds with \(embedder.model)")
        }
        guard let bytes = try await storage.blob(knowledgeBase: target.knowledgeBaseID, sha256: document.contentHash) else {
            throw Unindexable("the document's bytes are missing")
        }
        let text: String
        do {
            text = try await extract(bytes, document.mediaType)
        } catch {
            throw Unindexable("the document could not be read: \(error)")
        }
        let chunks = Chunker(settings: chunking, countTokens: countTokens).chunks(of: text)
        guard !chunks.isEmpty else { throw Unindexable("the document has no text to index") }
        let inputs = chunks.map(\.embeddingInput)
        let hashes = inputs.map { SHA256.hash(data: Data($0.utf8)).map { String(format: "%02x", $0) }.joined() }
        var vectors = try await storage.cachedVectors(Array(Set(hashes)), model: embedder.model)
        var missing: [(hash: String, input: String)] = []
        var seen = Set(vectors.keys)
        for (hash, input) in zip(hashes, inputs) where seen.insert(hash).inserted { missing.append((hash, input)) }
        var reported = ContinuousClock.now
        // Nil as soon as one call does not say (a partial count would mislead).
        var tokens: Int? = 0
        for start in stride(from: 0, to: missing.count, by: Self.embeddingBatch) {
            if ContinuousClock.now - reported >= progressEvery {
                reported = ContinuousClock.now
                let done = chunks.count - missing.count + start
                let moved = try await runs.end(
                    .progress(.init(runID: target.runID, done: done, total: chunks.count, progressedAt: Date())),
                    on: KnowledgeIndexingDecider.streamID(target.runID), commandID: "knowledge-index/\(target.runID.uuidString.lowercased())/progress/\(done)",
                    userID: Self.workerUserID, cause: cause, ifAt: nil)
                // Ended meanwhile (cancelled, timed out): embedding the rest would be wasted.
                if !moved, try await !isRunning(target) { throw RunEnded() }
            }
            let batch = missing[start..<min(start + Self.embeddingBatch, missing.count)]
            let counted = try await embedder.embedCounted(batch.map(\.input))
            let embedded = counted.vectors
            if let sum = tokens, let more = counted.tokens { tokens = sum + more } else { tokens = nil }
            guard embedded.count == batch.count else { throw EmbedderError.malformedReply("\(embedded.count) vectors for \(batch.count) texts") }
            var fresh: [String: [Float]] = [:]
            for (entry, vector) in zip(batch, embedded) { fresh[entry.hash] = vector }
            try await storage.cacheVectors(fresh, model: embedder.model)
            vectors.merge(fresh) { first, _ in first }
        }
        let indexed = zip(chunks, hashes).map { chunk, hash in
            IndexedChunk(
                chunkID: Chunk.id(document: target.documentID, version: target.version, settings: chunking, ordinal: chunk.ordinal), chunk: chunk,
                vector: vectors[hash] ?? [])
        }
        return Outcome(chunks: indexed, embedded: missing.count, characters: text.unicodeScalars.count, tokens: tokens)
    }

    // MARK: A deleted document

    func removed(_ requested: Target, cause: IntegrationMessage) async throws {
        try await storage.removeChunks(knowledgeBase: requested.knowledgeBaseID, document: requested.documentID)
        let (base, _) = try await bases.load(KnowledgeBaseDecider.streamID(requested.knowledgeBaseID).description)
        var target = requested
        target.chunking = base.chunking
        if let content = base.documents[target.documentID]?.content { try await removeBlobIfUnused(target.knowledgeBaseID, content.contentHash) }
        // A run of the deleted version that has not ended ends now: it can write nothing more.
        let (run, _) = try await runs.load(KnowledgeIndexingDecider.streamID(target.runID).description)
        if run.status == .running || run.status == .none {
            try await end(target, .cancel(.init(runID: target.runID, reason: "the document was deleted", cancelledAt: Date())), cause: cause)
        }
    }

    func removeBlobIfUnused(_ knowledgeBase: UUID, _ hash: String) async throws {
        try await storage.removeBlob(knowledgeBase: knowledgeBase, sha256: hash) {
            let (base, _) = try await self.bases.load(KnowledgeBaseDecider.streamID(knowledgeBase).description)
            return !KnowledgeBaseDecider.uses(base, contentHash: hash)
        }
    }

    // MARK: The watchdog

    /// Times the run out, as an event, if it is running and its stream has been silent for
    /// longer than `stallAfter` (or the watchdog's grace, if longer); true if it did. Only at the
    /// version examined, so a run that just moved on is left alone.
    public func failIfStalled(_ runID: UUID, policy: StallPolicy, now: Date) async throws -> Bool {
        let stream = KnowledgeIndexingDecider.streamID(runID)
        let (state, _) = try await runs.load(stream.description)
        guard state.status == .running, let last = try await runs.lastProgress(stream.description) else { return false }
        let allowed = max(Self.seconds(stallAfter), Self.seconds(policy.grace))
        let silent = now.timeIntervalSince(last.at)
        guard silent > allowed else { return false }
        return try await runs.end(
            .timeOut(.init(
                runID: runID, reason: "the run made no progress for \(Int(silent)) s (at most \(Int(allowed)) s); the worker running it was lost",
                timedOutAt: now)),
            on: stream, commandID: "knowledge-index/\(runID.uuidString.lowercased())/end", userID: Self.workerUserID, cause: nil, ifAt: last.version)
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    // MARK: Helpers

    /// The run ended while the worker was at it.
    struct RunEnded: Error {}

    func isRunning(_ target: Target) async throws -> Bool {
        try await runs.load(KnowledgeIndexingDecider.streamID(target.runID).description).0.status == .running
    }

    /// Takes the document's chunks out of the index, if the target's version is still current.
    func withdraw(_ target: Target) async throws {
        _ = try await storage.replaceChunks(
            knowledgeBase: target.knowledgeBaseID, document: target.documentID, version: target.version, model: embedder.model, chunks: [],
            current: { try await self.isCurrent(target) })
    }

    func isCurrent(_ target: Target) async throws -> Bool {
        let (base, _) = try await bases.load(KnowledgeBaseDecider.streamID(target.knowledgeBaseID).description)
        guard let document = base.documents[target.documentID], base.chunking == target.chunking else { return false }
        return Self.notCurrent(document, target.version) == nil
    }

    static func notCurrent(_ document: KnowledgeBaseDecider.Document, _ version: Int) -> String? {
        if document.deleted { return "the document was deleted" }
        if document.version != version { return "version \(version) was replaced by version \(document.version)" }
        return nil
    }

    /// Appends `command` to the run; false if the run had ended (or it was appended before).
    @discardableResult
    func end(_ target: Target, _ command: KnowledgeIndexingDecider.Command, cause: IntegrationMessage) async throws -> Bool {
        let name = switch command {
        case .start: "start"
        case .progress(let progressed): "progress/\(progressed.done)"
        case .complete, .fail, .cancel, .timeOut: "end"
        }
        return try await runs.end(
            command, on: KnowledgeIndexingDecider.streamID(target.runID),
            commandID: "knowledge-index/\(target.runID.uuidString.lowercased())/\(name)", userID: Self.workerUserID, cause: cause, ifAt: nil)
    }
}
