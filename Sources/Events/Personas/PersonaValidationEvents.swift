import Foundation

/// The judge's scores for one response, each 0 to 10 (the seed's criteria).
public struct PersonaScores: Codable, Sendable, Equatable {
    public var tone: Double
    public var roleAdherence: Double
    public var traitAlignment: Double

    public init(tone: Double, roleAdherence: Double, traitAlignment: Double) {
        self.tone = tone
        self.roleAdherence = roleAdherence
        self.traitAlignment = traitAlignment
    }

    public var average: Double { ((tone + roleAdherence + traitAlignment) / 3 * 100).rounded() / 100 }
}

/// One judged response.
public struct PersonaJudgement: Codable, Sendable, Equatable {
    public var index: Int
    public var scores: PersonaScores
    public var average: Double
    public var reasoning: String

    public init(index: Int, scores: PersonaScores, reasoning: String) {
        self.index = index
        self.scores = scores
        average = scores.average
        self.reasoning = reasoning
    }
}

/// Someone asked the judge to score responses against a persona version (stream
/// `personavalidation-<id>`).
public struct PersonaValidationRequested: DomainEvent {
    public static let eventType = "PersonaValidationRequested"

    public var validationID: UUID
    public var personaID: UUID
    public var ownerID: String
    public var version: Int
    public var responses: [String]
    public var requestedAt: Date

    public init(validationID: UUID, personaID: UUID, ownerID: String, version: Int, responses: [String], requestedAt: Date) {
        self.validationID = validationID
        self.personaID = personaID
        self.ownerID = ownerID
        self.version = version
        self.responses = responses
        self.requestedAt = requestedAt
    }

    enum CodingKeys: String, CodingKey {
        case validationID = "validationId"
        case personaID = "personaId"
        case ownerID = "ownerId"
        case version, responses, requestedAt
    }
}

/// The judge scored every response. `judge` names it (`offline-judge` when no model is set).
public struct PersonaValidationCompleted: DomainEvent {
    public static let eventType = "PersonaValidationCompleted"

    public var validationID: UUID
    public var personaID: UUID
    public var judge: String
    public var results: [PersonaJudgement]
    public var average: Double
    /// Judge calls that needed their one repair attempt.
    public var repairs: Int
    public var completedAt: Date

    public init(validationID: UUID, personaID: UUID, judge: String, results: [PersonaJudgement], average: Double, repairs: Int, completedAt: Date) {
        self.validationID = validationID
        self.personaID = personaID
        self.judge = judge
        self.results = results
        self.average = average
        self.repairs = repairs
        self.completedAt = completedAt
    }

    enum CodingKeys: String, CodingKey {
        case validationID = "validationId"
        case personaID = "personaId"
        case judge, results, average, repairs, completedAt
    }
}

/// The judge could not score: its reply was not the required JSON even after one repair (the
/// raw reply is kept), or the model failed.
public struct PersonaValidationFailed: DomainEvent {
    public static let eventType = "PersonaValidationFailed"

    public var validationID: UUID
    public var personaID: UUID
    public var error: String
    public var rawReply: String?
    public var failedAt: Date

    public init(validationID: UUID, personaID: UUID, error: String, rawReply: String?, failedAt: Date) {
        self.validationID = validationID
        self.personaID = personaID
        self.error = error
        self.rawReply = rawReply
        self.failedAt = failedAt
    }

    enum CodingKeys: String, CodingKey {
        case validationID = "validationId"
        case personaID = "personaId"
        case error, rawReply, failedAt
    }
}

/// The events of one validation (stream `personavalidation-<id>`).
public enum PersonaValidationEvent: EventFamily, Equatable {
    public static var registry: EventRegistry { .personas }

    case requested(PersonaValidationRequested)
    case completed(PersonaValidationCompleted)
    case failed(PersonaValidationFailed)

    public var payload: any DomainEvent {
        switch self {
        case .requested(let event): event
        case .completed(let event): event
        case .failed(let event): event
        }
    }

    public init?(payload: any DomainEvent) {
        switch payload {
        case let event as PersonaValidationRequested: self = .requested(event)
        case let event as PersonaValidationCompleted: self = .completed(event)
        case let event as PersonaValidationFailed: self = .failed(event)
        default: return nil
        }
    }
}

extension EventRegistry {
    /// The stored event types of the Personas module.
    public static let personas: EventRegistry = {
        var registry = EventRegistry()
        registry.register(PersonaCreated.self)
        registry.register(PersonaRevised.self)
        registry.register(PersonaDeleted.self)
        registry.register(PersonaEvaluationSetFrozen.self)
        registry.register(PersonaLabelMoved.self)
        registry.register(PersonaGateStarted.self)
        registry.register(PersonaGateDecided.self)
        registry.register(PersonaGateFailed.self)
        registry.register(PersonaValidationRequested.self)
        registry.register(PersonaValidationCompleted.self)
        registry.register(PersonaValidationFailed.self)
        return registry
    }()
}

extension IntegrationContract {
    /// What the Personas module publishes: validations and gates as work, and label moves and
    /// verdicts on `events`.
    public static let personas: [IntegrationContract] = [
        IntegrationContract(
            eventType: PersonaValidationRequested.eventType, exchange: "persona.validate", routingKey: "persona.validate", kind: .workMessage),
        IntegrationContract(eventType: PersonaGateStarted.eventType, exchange: "persona.gate", routingKey: "persona.gate", kind: .workMessage),
        IntegrationContract(eventType: PersonaCreated.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "persona.created"),
        IntegrationContract(eventType: PersonaRevised.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "persona.revised"),
        IntegrationContract(eventType: PersonaDeleted.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "persona.deleted"),
        IntegrationContract(eventType: PersonaLabelMoved.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "persona.label_moved"),
        IntegrationContract(eventType: PersonaGateDecided.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "persona.gate.decided"),
        IntegrationContract(
            eventType: PersonaValidationCompleted.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "persona.validation.completed"),
        IntegrationContract(
            eventType: PersonaValidationFailed.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "persona.validation.failed"),
    ]
}
