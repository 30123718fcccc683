import Events
import Foundation

/// One question asked of a knowledge base (stream `knowledgeanswer-<id>`): requested once, then
/// answered or failed once.
public enum KnowledgeAnswerDecider: Decider {
    public static let questionLimit = TextLimit(characters: 1...2_000)
    public static let topKRange = 1...20

    public enum Status: String, Sendable, Equatable {
        case none, pending, completed, failed
    }

    public enum Command: Sendable, Equatable {
        case request(KnowledgeAnswerRequested)
        case complete(KnowledgeAnswerCompleted)
        case fail(KnowledgeAnswerFailed)
    }

    public struct State: Sendable, Equatable {
        public var status = Status.none
        public var request: KnowledgeAnswerRequested?
        public var completed: KnowledgeAnswerCompleted?
        public var failure: String?
    }

    public static let category = "knowledgeanswer"
    public static let initialState = State()

    public static func streamID(_ answerID: UUID) -> StreamID { StreamID(category: category, id: answerID) }

    public static func decide(_ command: Command, state: State) throws -> [KnowledgeAnswerEvent] {
        switch command {
        case .request(let request):
            guard state.status == .none else {
                throw DomainError(.conflict, code: .knowledgeAnswerExists, "answer \(request.answerID) was already asked for")
            }
            let question = request.question.trimmingCharacters(in: .whitespacesAndNewlines)
            try questionLimit.check(question, field: "question", code: .knowledgeQueryInvalid)
            guard topKRange.contains(request.topK) else {
                throw DomainError(.invalid, code: .knowledgeQueryInvalid, "top_k must be \(topKRange.lowerBound) to \(topKRange.upperBound)")
            }
            var trimmed = request
            trimmed.question = question
            return [.requested(trimmed)]
        case .complete(let completed):
            guard state.status == .pending else { throw ended(state) }
            return [.completed(completed)]
        case .fail(let failed):
            guard state.status == .pending else { throw ended(state) }
            return [.failed(failed)]
        }
    }

    public static func evolve(_ state: State, _ event: KnowledgeAnswerEvent) -> State {
        var state = state
        switch event {
        case .requested(let request):
            state.status = .pending
            state.request = request
        case .completed(let completed):
            state.status = .completed
            state.completed = completed
        case .failed(let failed):
            state.status = .failed
            state.failure = failed.reason
        }
        return state
    }

    static func ended(_ state: State) -> DomainError {
        DomainError(.conflict, code: .knowledgeAnswerEnded, "the answer has ended (\(state.status.rawValue))")
    }
}
