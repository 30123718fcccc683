import Foundation

/// One case of a persona's evaluation set: an input, optionally a reference answer and the
/// context variables to render the persona with.
public struct PersonaEvaluationCase: Codable, Sendable, Equatable {
    public var caseID: String
    public var input: String
    public var reference: String?
    public var variables: [String: JSONValue]?

    public init(caseID: String, input: String, reference: String? = nil, variables: [String: JSONValue]? = nil) {
        self.caseID = caseID
        self.input = input
        self.reference = reference
        self.variables = variables
    }

    enum CodingKeys: String, CodingKey {
        case caseID = "caseId"
        case input, reference, variables
    }
}

/// A persona's evaluation set was frozen (replacing any earlier one). Stream
/// `personarelease-<id>`, which holds the persona's labels and regression gates.
public struct PersonaEvaluationSetFrozen: DomainEvent {
    public static let eventType = "PersonaEvaluationSetFrozen"

    public var personaID: UUID
    public var cases: [PersonaEvaluationCase]
    public var frozenAt: Date

    public init(personaID: UUID, cases: [PersonaEvaluationCase], frozenAt: Date) {
        self.personaID = personaID
        self.cases = cases
        self.frozenAt = frozenAt
    }

    enum CodingKeys: String, CodingKey {
        case personaID = "personaId"
        case cases, frozenAt
    }
}

/// A label now points at a version. `gateID` names the regression gate that let it move.
public struct PersonaLabelMoved: DomainEvent {
    public static let eventType = "PersonaLabelMoved"

    public var personaID: UUID
    public var label: String
    public var version: Int
    public var previousVersion: Int?
    public var gateID: UUID?
    public var movedAt: Date

    public init(personaID: UUID, label: String, version: Int, previousVersion: Int?, gateID: UUID?, movedAt: Date) {
        self.personaID = personaID
        self.label = label
        self.version = version
        self.previousVersion = previousVersion
        self.gateID = gateID
        self.movedAt = movedAt
    }

    enum CodingKeys: String, CodingKey {
        case personaID = "personaId"
        case gateID = "gateId"
        case label, version, previousVersion, movedAt
    }
}

/// Moving a gated label started a regression gate: the judge scores both versions over the
/// evaluation set, `runs` times per case. The thresholds are the configuration of that moment.
public struct PersonaGateStarted: DomainEvent {
    public static let eventType = "PersonaGateStarted"

    public var gateID: UUID
    public var personaID: UUID
    public var ownerID: String
    public var label: String
    public var candidateVersion: Int
    public var baselineVersion: Int
    public var cases: [PersonaEvaluationCase]
    public var runs: Int
    public var maxMeanDrop: Double
    public var maxCaseDrop: Double
    public var startedAt: Date

    public init(
        gateID: UUID, personaID: UUID, ownerID: String, label: String, candidateVersion: Int, baselineVersion: Int, cases: [PersonaEvaluationCase],
        runs: Int, maxMeanDrop: Double, maxCaseDrop: Double, startedAt: Date
    ) {
        self.gateID = gateID
        self.personaID = personaID
        self.ownerID = ownerID
        self.label = label
        self.candidateVersion = candidateVersion
        self.baselineVersion = baselineVersion
        self.cases = cases
        self.runs = runs
        self.maxMeanDrop = maxMeanDrop
        self.maxCaseDrop = maxCaseDrop
        self.startedAt = startedAt
    }

    enum CodingKeys: String, CodingKey {
        case gateID = "gateId"
        case personaID = "personaId"
        case ownerID = "ownerId"
        case label, candidateVersion, baselineVersion, cases, runs, maxMeanDrop, maxCaseDrop, startedAt
    }
}

/// One case's mean scores in a gate (0 to 10).
public struct PersonaGateCaseResult: Codable, Sendable, Equatable {
    public var caseID: String
    public var candidate: Double
    public var baseline: Double
    public var regressed: Bool

    public init(caseID: String, candidate: Double, baseline: Double, regressed: Bool) {
        self.caseID = caseID
        self.candidate = candidate
        self.baseline = baseline
        self.regressed = regressed
    }

    enum CodingKeys: String, CodingKey {
        case caseID = "caseId"
        case candidate, baseline, regressed
    }
}

/// A gate's verdict, with every case's scores. When `passed`, the label move is appended with
/// it, in the same transaction.
public struct PersonaGateDecided: DomainEvent {
    public static let eventType = "PersonaGateDecided"

    public var gateID: UUID
    public var personaID: UUID
    public var passed: Bool
    public var judge: String
    public var candidateMean: Double
    public var baselineMean: Double
    public var cases: [PersonaGateCaseResult]
    /// Why it was refused, in words; empty when it passed.
    public var reason: String
    public var decidedAt: Date

    public init(
        gateID: UUID, personaID: UUID, passed: Bool, judge: String, candidateMean: Double, baselineMean: Double, cases: [PersonaGateCaseResult],
        reason: String, decidedAt: Date
    ) {
        self.gateID = gateID
        self.personaID = personaID
        self.passed = passed
        self.judge = judge
        self.candidateMean = candidateMean
        self.baselineMean = baselineMean
        self.cases = cases
        self.reason = reason
        self.decidedAt = decidedAt
    }

    enum CodingKeys: String, CodingKey {
        case gateID = "gateId"
        case personaID = "personaId"
        case passed, judge, candidateMean, baselineMean, cases, reason, decidedAt
    }
}

/// A gate could not reach a verdict (the model failed, the work was given up). The label stays.
public struct PersonaGateFailed: DomainEvent {
    public static let eventType = "PersonaGateFailed"

    public var gateID: UUID
    public var personaID: UUID
    public var error: String
    public var failedAt: Date

    public init(gateID: UUID, personaID: UUID, error: String, failedAt: Date) {
        self.gateID = gateID
        self.personaID = personaID
        self.error = error
        self.failedAt = failedAt
    }

    enum CodingKeys: String, CodingKey {
        case gateID = "gateId"
        case personaID = "personaId"
        case error, failedAt
    }
}

/// The events of a persona's release stream (`personarelease-<id>`): labels, the evaluation set,
/// gates.
public enum PersonaReleaseEvent: EventFamily, Equatable {
    public static var registry: EventRegistry { .personas }

    case evaluationSetFrozen(PersonaEvaluationSetFrozen)
    case labelMoved(PersonaLabelMoved)
    case gateStarted(PersonaGateStarted)
    case gateDecided(PersonaGateDecided)
    case gateFailed(PersonaGateFailed)

    public var payload: any DomainEvent {
        switch self {
        case .evaluationSetFrozen(let event): event
        case .labelMoved(let event): event
        case .gateStarted(let event): event
        case .gateDecided(let event): event
        case .gateFailed(let event): event
        }
    }

    public init?(payload: any DomainEvent) {
        switch payload {
        case let event as PersonaEvaluationSetFrozen: self = .evaluationSetFrozen(event)
        case let event as PersonaLabelMoved: self = .labelMoved(event)
        case let event as PersonaGateStarted: self = .gateStarted(event)
        case let event as PersonaGateDecided: self = .gateDecided(event)
        case let event as PersonaGateFailed: self = .gateFailed(event)
        default: return nil
        }
    }
}
