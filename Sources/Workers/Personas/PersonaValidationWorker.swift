import Commands
import Events
import Foundation
import Logging

/// Judges validations handed out through `persona.validate`: scores each response against the
/// persona version it names (one judge call per response), and appends exactly one outcome. A
/// redelivered message of a validation that ended appends nothing.
public struct PersonaValidationWorker: Sendable {
    /// Who the worker's events say caused them.
    public static let workerUserID = "system:persona-judge"

    let validations: CommandHandler<PersonaValidationDecider>
    let personas: CommandHandler<PersonaDecider>
    let judge: PersonaJudge
    let logger: Logger

    public init(store: any EventStore, judge: PersonaJudge, logger: Logger) {
        validations = CommandHandler(store: store)
        personas = CommandHandler(store: store)
        self.judge = judge
        self.logger = logger
    }

    public func handle(_ item: WorkItem) async throws {
        let (message, validationID) = try item.named("validation_id", code: .personaMessageMalformed)
        let (state, _) = try await validations.load(PersonaValidationDecider.streamID(validationID).description)
        guard state.status == .pending, let request = state.request else { return }
        let (persona, _) = try await personas.load(PersonaDecider.streamID(request.personaID).description)
        guard let version = persona.version(request.version) else {
            try await end(validationID, .fail(.init(validationID: validationID, personaID: request.personaID, error: "the persona version no longer exists", rawReply: nil, failedAt: Date())), cause: message)
            return
        }
        var results: [PersonaJudgement] = []
        var repairs = 0
        do {
            for (index, response) in request.responses.enumerated() {
                let verdict = try await judge.judge(response, persona: version.definition)
                results.append(PersonaJudgement(index: index, scores: verdict.scores, reasoning: verdict.reasoning))
                if verdict.repaired { repairs += 1 }
            }
        } catch let failure as PersonaJudge.Failure {
            logger.warning("persona validation failed", metadata: ["validation.id": "\(validationID)", "reason": "\(failure)"])
            try await end(validationID, .fail(.init(
                validationID: validationID, personaID: request.personaID, error: failure.description, rawReply: failure.raw.map { String($0.prefix(8000)) },
                failedAt: Date())), cause: message)
            return
        }
        let average = results.isEmpty ? 0 : (results.map(\.average).reduce(0, +) / Double(results.count) * 100).rounded() / 100
        try await end(validationID, .complete(.init(
            validationID: validationID, personaID: request.personaID, judge: judge.name, results: results, average: average, repairs: repairs,
            completedAt: Date())), cause: message)
    }

    /// The worker's give-up hook: the validation ends failed, saying so.
    public func giveUp(_ item: WorkItem, after error: any Error) async throws {
        guard let (message, validationID) = try? item.named("validation_id", code: .personaMessageMalformed) else { return }
        let (state, _) = try await validations.load(PersonaValidationDecider.streamID(validationID).description)
        guard state.status == .pending, let request = state.request else { return }
        try await end(validationID, .fail(.init(
            validationID: validationID, personaID: request.personaID, error: "the validation could not be completed: its work was given up after \(item.attempt) tries",
            rawReply: nil, failedAt: Date())), cause: message)
    }

    func end(_ validationID: UUID, _ command: PersonaValidationDecider.Command, cause: IntegrationMessage) async throws {
        _ = try await validations.end(
            command, on: PersonaValidationDecider.streamID(validationID), commandID: "persona-validation/\(validationID.uuidString.lowercased())/end",
            userID: Self.workerUserID, cause: cause, ifAt: nil)
    }
}
