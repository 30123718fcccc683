import Commands
import Events
import Foundation
import Logging

/// Decides regression gates handed out through `persona.gate`: for each case of the frozen
/// evaluation set and each of the two versions (the candidate and the one holding the label), it
/// renders the version with the case's variables, asks the model for a response `runs` times,
/// and has the judge score each response. The gate refuses when the candidate's mean drops by
/// more than `maxMeanDrop`, or any case's mean by more than `maxCaseDrop`. The verdict, with every
/// case's scores, is one event; a pass moves the label in the same append.
public struct PersonaGateWorker: Sendable {
    public static let workerUserID = "system:persona-gate"
    /// The temperature responses are sampled at: the seed's default for agents.
    public static let responseTemperature = 0.7

    let releases: CommandHandler<PersonaReleaseDecider>
    let personas: CommandHandler<PersonaDecider>
    let judge: PersonaJudge
    /// What answers the cases, and under which model name.
    let responder: (model: any LanguageModel, name: String)
    let rendering: PersonaRendering
    let logger: Logger

    public init(
        store: any EventStore, judge: PersonaJudge, responder: (model: any LanguageModel, name: String), rendering: PersonaRendering, logger: Logger
    ) {
        releases = CommandHandler(store: store)
        personas = CommandHandler(store: store)
        self.judge = judge
        self.responder = responder
        self.rendering = rendering
        self.logger = logger
    }

    struct GateFailure: Error { let reason: String }

    public func handle(_ item: WorkItem) async throws {
        let (message, gateID) = try item.named("gate_id", code: .personaMessageMalformed)
        guard let gate = try await openGate(message, gateID) else { return }
        let (persona, _) = try await personas.load(PersonaDecider.streamID(gate.personaID).description)
        guard let candidate = persona.version(gate.candidateVersion), let baseline = persona.version(gate.baselineVersion) else {
            try await fail(gate, "a version under test no longer exists", cause: message)
            return
        }
        var results: [PersonaGateCaseResult] = []
        do {
            for testCase in gate.cases {
                let candidateScore = try await score(candidate, testCase, runs: gate.runs)
                let baselineScore = try await score(baseline, testCase, runs: gate.runs)
                results.append(PersonaGateCaseResult(
                    caseID: testCase.caseID, candidate: candidateScore, baseline: baselineScore, regressed: baselineScore - candidateScore > gate.maxCaseDrop))
            }
        } catch let failure as GateFailure {
            try await fail(gate, failure.reason, cause: message)
            return
        }
        let candidateMean = Self.mean(results.map(\.candidate))
        let baselineMean = Self.mean(results.map(\.baseline))
        var reasons: [String] = []
        if baselineMean - candidateMean > gate.maxMeanDrop {
            reasons.append(String(format: "the mean score dropped from %.2f to %.2f (more than %.2f)", baselineMean, candidateMean, gate.maxMeanDrop))
        }
        let regressed = results.filter(\.regressed)
        if !regressed.isEmpty {
            reasons.append("\(regressed.count) case\(regressed.count == 1 ? "" : "s") dropped by more than \(String(format: "%.2f", gate.maxCaseDrop)): \(regressed.map(\.caseID).joined(separator: ", "))")
        }
        let verdict = PersonaGateDecided(
            gateID: gateID, personaID: gate.personaID, passed: reasons.isEmpty, judge: judge.name, candidateMean: candidateMean, baselineMean: baselineMean,
            cases: results, reason: reasons.joined(separator: "; "), decidedAt: Date())
        logger.info("persona gate decided", metadata: ["gate.id": "\(gateID)", "passed": "\(verdict.passed)", "candidate": "\(candidateMean)", "baseline": "\(baselineMean)"])
        _ = try await releases.end(
            .decideGate(verdict), on: PersonaReleaseDecider.streamID(gate.personaID), commandID: "persona-gate/\(gateID.uuidString.lowercased())/decide",
            userID: Self.workerUserID, cause: message, ifAt: nil)
    }

    /// The mean judged score of `version`'s responses to the case over `runs` samples.
    func score(_ version: PersonaDecider.Version, _ testCase: PersonaEvaluationCase, runs: Int) async throws -> Double {
        let prompt: String
        do {
            prompt = try rendering.render(version, variables: testCase.variables ?? [:])
        } catch let error as DomainError {
            throw GateFailure(reason: "version \(version.number) does not render for case '\(testCase.caseID)': \(error.message)")
        }
        var scores: [Double] = []
        for _ in 0..<max(1, runs) {
            let response: String
            do {
                let reply = try await responder.model.complete(ChatRequest(
                    model: responder.name, messages: [ChatMessage(role: .system, content: prompt), ChatMessage(role: .user, content: testCase.input)],
                    temperature: Self.responseTemperature, maxTokens: 800))
                response = reply.message.content ?? ""
            } catch let error as LanguageModelError {
                throw GateFailure(reason: "the model failed while answering case '\(testCase.caseID)': \(error.description)")
            }
            do {
                let verdict = try await judge.judge(response, persona: version.definition, input: testCase.input, reference: testCase.reference)
                scores.append(verdict.scores.average)
            } catch let failure as PersonaJudge.Failure {
                throw GateFailure(reason: "case '\(testCase.caseID)': \(failure.description)")
            }
        }
        return Self.mean(scores)
    }

    static func mean(_ values: [Double]) -> Double {
        values.isEmpty ? 0 : (values.reduce(0, +) / Double(values.count) * 100).rounded() / 100
    }

    func openGate(_ message: IntegrationMessage, _ gateID: UUID) async throws -> PersonaGateStarted? {
        guard let raw = message.data["persona_id"]?.stringValue, let personaID = UUID(uuidString: raw) else {
            throw DomainError(.invalid, code: .personaMessageMalformed, "the work message has no persona_id")
        }
        let (state, _) = try await releases.load(PersonaReleaseDecider.streamID(personaID).description)
        guard let gate = state.openGate, gate.gateID == gateID else { return nil }
        return gate
    }

    func fail(_ gate: PersonaGateStarted, _ reason: String, cause: IntegrationMessage) async throws {
        logger.warning("persona gate failed", metadata: ["gate.id": "\(gate.gateID)", "reason": "\(reason)"])
        _ = try await releases.end(
            .failGate(PersonaGateFailed(gateID: gate.gateID, personaID: gate.personaID, error: reason, failedAt: Date())),
            on: PersonaReleaseDecider.streamID(gate.personaID), commandID: "persona-gate/\(gate.gateID.uuidString.lowercased())/fail",
            userID: Self.workerUserID, cause: cause, ifAt: nil)
    }

    /// The worker's give-up hook: the gate fails, saying so, and the label stays.
    public func giveUp(_ item: WorkItem, after error: any Error) async throws {
        guard let (message, gateID) = try? item.named("gate_id", code: .personaMessageMalformed), let gate = try await openGate(message, gateID) else { return }
        try await fail(gate, "the gate could not be decided: its work was given up after \(item.attempt) tries", cause: message)
    }
}
