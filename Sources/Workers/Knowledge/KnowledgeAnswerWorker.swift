import Commands
import Events
import Foundation
import Logging

/// Answers questions handed out through `knowledge.answer`: retrieves the base's best chunks
/// (hybrid), asks the model with the chunks numbered (or, with no model configured, quotes the
/// best sentences), keeps only citations of chunks it gave, and records the answer as of the
/// base's index version. A redelivered message of an answered question appends nothing.
public struct KnowledgeAnswerWorker: Sendable {
    public static let workerUserID = "system:knowledge-answerer"

    let answers: CommandHandler<KnowledgeAnswerDecider>
    let bases: CommandHandler<KnowledgeBaseDecider>
    let retriever: KnowledgeRetriever
    /// The model and its name; nil: the offline extractive answerer.
    let model: (any LanguageModel)?
    let modelName: String
    let logger: Logger

    public init(
        store: any EventStore, retriever: KnowledgeRetriever, model: (any LanguageModel)?, modelName: String, logger: Logger
    ) {
        answers = CommandHandler(store: store)
        bases = CommandHandler(store: store, memo: KnowledgeBaseDecider.memo())
        self.retriever = retriever
        self.model = model
        self.modelName = modelName
        self.logger = logger
    }

    public func handle(_ item: WorkItem) async throws {
        let (message, answerID) = try item.named("answer_id", code: .knowledgeMessageMalformed)
        let (state, _) = try await answers.load(KnowledgeAnswerDecider.streamID(answerID).description)
        guard state.status == .pending, let request = state.request else { return }
        let (base, indexVersion) = try await bases.load(KnowledgeBaseDecider.streamID(request.knowledgeBaseID).description)
        guard base.exists else {
            try await end(answerID, .fail(.init(answerID: answerID, reason: "the knowledge base no longer exists", failedAt: Date())), cause: message)
            return
        }
        let found = try await retriever.search(request.knowledgeBaseID, query: request.question, k: request.topK, mode: .hybrid).map(\.chunk)
        let names = base.documents.mapValues(\.content.name)
        var text: String
        var cited: [Int]
        var dropped: [String] = []
        var writer = KnowledgeAnswering.offlineModel
        if let model, !found.isEmpty {
            let response = try await model.complete(ChatRequest(
                model: modelName, messages: KnowledgeAnswering.prompt(question: request.question, chunks: found, names: names), temperature: 0,
                maxTokens: 800))
            (text, cited, dropped) = KnowledgeAnswering.citations(in: response.message.content ?? "", given: found.count)
            writer = response.model
            if !dropped.isEmpty {
                logger.warning("an answer cited passages it was not given; dropped", metadata: ["answer.id": "\(answerID)", "markers": "\(dropped)"])
            }
        } else {
            (text, cited) = KnowledgeAnswering.extractive(question: request.question, chunks: found)
        }
        let retrieved = found.enumerated().map { KnowledgeAnswering.reference($1, marker: $0 + 1) }
        try await end(answerID, .complete(.init(
            answerID: answerID, answer: text, model: writer, embeddingModel: retriever.embedder.model, indexVersion: indexVersion,
            citations: cited.map { retrieved[$0 - 1] }, retrieved: retrieved, droppedMarkers: dropped, completedAt: Date())), cause: message)
    }

    /// The worker's give-up hook: the answer ends failed, saying so.
    public func giveUp(_ item: WorkItem, after error: any Error) async throws {
        guard let (message, answerID) = try? item.named("answer_id", code: .knowledgeMessageMalformed) else { return }
        try await end(answerID, .fail(.init(
            answerID: answerID, reason: "the question could not be answered: its work was given up after \(item.attempt) tries (\(error))", failedAt: Date())),
            cause: message)
    }

    func end(_ answerID: UUID, _ command: KnowledgeAnswerDecider.Command, cause: IntegrationMessage) async throws {
        _ = try await answers.end(
            command, on: KnowledgeAnswerDecider.streamID(answerID), commandID: "knowledge-answer/\(answerID.uuidString.lowercased())/end",
            userID: Self.workerUserID, cause: cause, ifAt: nil)
    }
}
