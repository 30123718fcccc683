import API
import Adapters
import Commands
import Events
import Foundation
import Logging
import Projections
import Synchronization
import Workers

/// The Knowledge module's configuration section.
struct KnowledgeConfiguration {
    enum EmbedderKind: String { case wordllama, openai }

    var embedder: EmbedderKind
    var embeddingModel: String
    var embedderDirectory: String
    var maxDocumentBytes: Int
    var workers: Int
    var answerModel: String?
    var stallSeconds: Int
    var vectorCacheMiB: Int

    static let settings: [SettingDescription] = [
        .init(
            "chronicle.knowledge.embedder", "wordllama",
            "wordllama (offline, in process) or openai (POST {CHRONICLE_LLM_BASE_URL}/embeddings with the llm module's key, tries, timeout and breaker)"),
        .init("chronicle.knowledge.embedding_model", "text-embedding-3-small", "The model the openai embedder asks for"),
        .init(
            "chronicle.knowledge.embedder_dir", "<data folder>/models/wordllama-0.4.0.post1",
            "The offline embedder's files (wordllama, unpacked by make bootstrap); loaded on first use"),
        .init("chronicle.knowledge.max_document_mib", "10", "Largest document upload in MiB (1 to 100); 413 beyond"),
        .init("chronicle.knowledge.workers", "2", "Documents indexed, and questions answered, at once per process (1 to 16)"),
        .init(
            "chronicle.knowledge.stall_seconds", "300",
            "An indexing run silent this long (no progress event; one is recorded every 10 s while it embeds) is timed out by the run watchdog (10 to 86400)"),
        .init(
            "chronicle.knowledge.vector_cache_mib", "512",
            "Vectors a process keeps in memory for search, in MiB (16 to 65536); past it the least recently searched bases are read again when searched"),
        .init("chronicle.knowledge.answer_model", "the agents' default model", "The model that answers questions; without a model service, the offline extractive answerer"),
    ]

    init(_ settings: Settings) throws {
        let kind = settings.text("chronicle.knowledge.embedder", default: "wordllama")
        guard let embedder = EmbedderKind(rawValue: kind) else { throw SettingsError("CHRONICLE_KNOWLEDGE_EMBEDDER must be wordllama or openai") }
        if embedder == .openai, settings.text("chronicle.llm.base_url") == nil {
            throw SettingsError("CHRONICLE_KNOWLEDGE_EMBEDDER=openai needs CHRONICLE_LLM_BASE_URL")
        }
        self.embedder = embedder
        embeddingModel = settings.text("chronicle.knowledge.embedding_model", default: "text-embedding-3-small")
        let data = ProcessInfo.processInfo.environment["CHRONICLE_DATA"] ?? ".chronicle"
        embedderDirectory = settings.text(
            "chronicle.knowledge.embedder_dir", default: URL(fileURLWithPath: data).appendingPathComponent(WordLlamaEmbedder.defaultDirectoryName).path)
        maxDocumentBytes = try settings.integer("chronicle.knowledge.max_document_mib", default: 10, range: 1...100) << 20
        workers = try settings.integer("chronicle.knowledge.workers", default: 2, range: 1...16)
        answerModel = settings.text("chronicle.knowledge.answer_model")
        stallSeconds = try settings.integer("chronicle.knowledge.stall_seconds", default: 300, range: 10...86_400)
        vectorCacheMiB = try settings.integer("chronicle.knowledge.vector_cache_mib", default: 512, range: 16...65_536)
    }
}

/// The offline embedder, loaded on first use: its table is 128k × 256 floats, which a process
/// that never embeds (most of the test suite's servers) should not hold.
final class LazyWordLlama: PassageEmbedder {
    let directory: URL
    private let loaded = Mutex<WordLlamaEmbedder?>(nil)

    init(directory: URL) { self.directory = directory }

    var model: String { WordLlamaEmbedder.modelName }
    var dimensions: Int { (try? embedder().dimensions) ?? 0 }

    func embedder() throws -> WordLlamaEmbedder {
        try loaded.withLock { kept in
            if let kept { return kept }
            let embedder = try WordLlamaEmbedder(directory: directory)
            kept = embedder
            return embedder
        }
    }

    func embed(_ texts: [String]) async throws -> [[Float]] { try await embedder().embed(texts) }
    func embedCounted(_ texts: [String]) async throws -> Embedded { try await embedder().embedCounted(texts) }
    /// None if the files cannot be read (the search that asked has already embedded its query,
    /// so they could): the chunks keep their whole-vector scores.
    func passageVectors(_ text: String, context: String, window: Int, stride: Int) -> [[Float]] {
        (try? embedder())?.passageVectors(text, context: context, window: window, stride: stride) ?? []
    }
}

/// Knowledge: knowledge bases of documents, indexed by a worker (extract, chunk, embed through a
/// cache, store) and searched by keyword, vector or both fused by Reciprocal Rank Fusion.
public struct KnowledgeModule: ChronicleModule {
    public init() {}

    public var name: String { "knowledge" }
    public var events: [EventRegistry] { [.knowledge] }
    public var contracts: [IntegrationContract] { IntegrationContract.knowledge }
    public var projections: [ProjectionDeclaration] { [.postgres(KnowledgeRunsProjection())] }
    public var settings: [SettingDescription] { KnowledgeConfiguration.settings }
    public var deciders: [AuditedDecider] { [AuditedDecider(KnowledgeBaseDecider.self), AuditedDecider(KnowledgeIndexingDecider.self)] }

    public func check(_ settings: Settings) throws { _ = try KnowledgeConfiguration(settings) }

    public func assemble(into app: inout Assembly) async throws {
        let configuration = try KnowledgeConfiguration(app.settings)
        let platform = app.platform
        let storage = PostgresKnowledgeStorage(
            client: platform.database.client, memoryLimit: configuration.vectorCacheMiB << 20, logger: app.logger)
        let embedder: any Embedder
        switch configuration.embedder {
        case .wordllama:
            embedder = LazyWordLlama(directory: URL(fileURLWithPath: configuration.embedderDirectory))
        case .openai:
            let llm = try LanguageModelConfiguration(app.settings, logger: app.logger)
            let url = app.settings.text("chronicle.llm.base_url") ?? ""
            let key = app.settings.text("chronicle.llm.api_key", secret: true) ?? app.settings.text("openai.api_key", secret: true)
            embedder = ResilientEmbedder(
                OpenAICompatibleEmbedder(
                    settings: .init(baseURL: url, apiKey: key, requestTimeout: llm.policy.timeout), model: configuration.embeddingModel, logger: app.logger),
                policy: llm.policy)
        }
        if app.roles.contains(.workers) {
            app.provide(KnowledgeSearchTool(store: platform.database.eventStore, retriever: KnowledgeRetriever(storage: storage, embedder: embedder)))
            let extraction = TextExtraction()
            let indexer = KnowledgeIndexWorker(
                store: platform.database.eventStore, storage: storage, embedder: embedder, extract: { try await extraction.text(of: $0, mediaType: $1) },
                stallAfter: .seconds(configuration.stallSeconds), prices: app.capability(ChatModel.self)?.prices ?? .defaults, logger: app.logger)
            app.add(
                worker: platform.worker(
                    name: "knowledge-index", exchange: "knowledge.index", delays: [.seconds(1), .seconds(5), .seconds(30)],
                    concurrency: configuration.workers, stallAfter: .seconds(2 * configuration.stallSeconds), giveUp: indexer.giveUp,
                    handler: indexer.handle))
            let runs = KnowledgeReadModels(client: platform.database.client, logger: app.logger)
            app.supervise(
                SupervisedRuns(
                    name: name, candidates: { try await runs.unfinishedRuns(startedBefore: $0, limit: $1) },
                    failIfStalled: { try await indexer.failIfStalled($0, policy: $1, now: $2) }))
            guard let chat = app.capability(ChatModel.self) else { throw AssemblyError("the knowledge module needs the llm module's model") }
            let answerer = KnowledgeAnswerWorker(
                store: platform.database.eventStore, retriever: KnowledgeRetriever(storage: storage, embedder: embedder), model: chat.offline ? nil : chat.model,
                modelName: configuration.answerModel ?? chat.defaultModel, logger: app.logger)
            app.add(
                worker: platform.worker(
                    name: "knowledge-answer", exchange: "knowledge.answer", delays: [.seconds(1), .seconds(5), .seconds(30)],
                    concurrency: configuration.workers, stallAfter: .seconds(300), giveUp: answerer.giveUp, handler: answerer.handle))
            app.logger.info("knowledge workers", metadata: [
                "embedder": "\(embedder.model)", "answers": "\(chat.offline ? KnowledgeAnswering.offlineModel : configuration.answerModel ?? chat.defaultModel)",
                "concurrency": "\(configuration.workers)",
            ])
        }
        if app.roles.contains(.api) {
            app.add(
                routes: KnowledgeController(
                    store: platform.database.eventStore, storage: storage, embedder: embedder,
                    settings: .init(maxDocumentBytes: configuration.maxDocumentBytes)
                ).mount)
        }
    }
}
