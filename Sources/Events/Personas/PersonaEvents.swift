import Foundation

/// How a persona sounds: a tone, at least one trait, a style.
public struct PersonaPersonality: Codable, Sendable, Equatable {
    public var tone: String
    public var traits: [String]
    public var style: String

    public init(tone: String, traits: [String], style: String) {
        self.tone = tone
        self.traits = traits
        self.style = style
    }
}

/// One example exchange shown to the model.
public struct PersonaExample: Codable, Sendable, Equatable {
    public var userInput: String
    public var assistantResponse: String

    public init(userInput: String, assistantResponse: String) {
        self.userInput = userInput
        self.assistantResponse = assistantResponse
    }
}

/// Everything one persona version says. Immutable once recorded: a change is a new version.
public struct PersonaDefinition: Codable, Sendable, Equatable {
    public var name: String
    public var role: String
    public var personality: PersonaPersonality
    public var fewShotExamples: [PersonaExample]
    public var instructions: String
    /// The prompt template (the Scriban subset of `PromptTemplate`).
    public var template: String
    /// A JSON schema (the subset of `JSONSchema`) for the context variables a render takes.
    public var variablesSchema: JSONValue?

    public init(
        name: String, role: String, personality: PersonaPersonality, fewShotExamples: [PersonaExample], instructions: String, template: String,
        variablesSchema: JSONValue?
    ) {
        self.name = name
        self.role = role
        self.personality = personality
        self.fewShotExamples = fewShotExamples
        self.instructions = instructions
        self.template = template
        self.variablesSchema = variablesSchema
    }

    enum CodingKeys: String, CodingKey {
        case name, role, personality, fewShotExamples, instructions, template, variablesSchema
    }

    /// Examples and instructions may be left out (none, and empty).
    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        role = try container.decode(String.self, forKey: .role)
        personality = try container.decode(PersonaPersonality.self, forKey: .personality)
        fewShotExamples = try container.decodeIfPresent([PersonaExample].self, forKey: .fewShotExamples) ?? []
        instructions = try container.decodeIfPresent(String.self, forKey: .instructions) ?? ""
        template = try container.decode(String.self, forKey: .template)
        variablesSchema = try container.decodeIfPresent(JSONValue.self, forKey: .variablesSchema)
    }
}

/// A persona was created: its version 1 (stream `persona-<id>`).
public struct PersonaCreated: DomainEvent {
    public static let eventType = "PersonaCreated"

    public var personaID: UUID
    public var ownerID: String
    public var definition: PersonaDefinition
    /// sha256 of the template: the key its parsed form is cached under.
    public var templateHash: String
    public var createdAt: Date

    public init(personaID: UUID, ownerID: String, definition: PersonaDefinition, templateHash: String, createdAt: Date) {
        self.personaID = personaID
        self.ownerID = ownerID
        self.definition = definition
        self.templateHash = templateHash
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case personaID = "personaId"
        case ownerID = "ownerId"
        case definition, templateHash, createdAt
    }
}

/// A new version of a persona: its stream version is the version number.
public struct PersonaRevised: DomainEvent {
    public static let eventType = "PersonaRevised"

    public var personaID: UUID
    public var version: Int
    public var definition: PersonaDefinition
    public var templateHash: String
    public var revisedAt: Date

    public init(personaID: UUID, version: Int, definition: PersonaDefinition, templateHash: String, revisedAt: Date) {
        self.personaID = personaID
        self.version = version
        self.definition = definition
        self.templateHash = templateHash
        self.revisedAt = revisedAt
    }

    enum CodingKeys: String, CodingKey {
        case personaID = "personaId"
        case version, definition, templateHash, revisedAt
    }
}

/// The persona was deleted. Terminal: it renders no more, and its history stays in the log.
public struct PersonaDeleted: DomainEvent {
    public static let eventType = "PersonaDeleted"

    public var personaID: UUID
    public var deletedAt: Date

    public init(personaID: UUID, deletedAt: Date) {
        self.personaID = personaID
        self.deletedAt = deletedAt
    }

    enum CodingKeys: String, CodingKey {
        case personaID = "personaId"
        case deletedAt
    }
}

/// The events of one persona's versions (stream `persona-<id>`).
public enum PersonaEvent: EventFamily, Equatable {
    public static var registry: EventRegistry { .personas }

    case created(PersonaCreated)
    case revised(PersonaRevised)
    case deleted(PersonaDeleted)

    public var payload: any DomainEvent {
        switch self {
        case .created(let event): event
        case .revised(let event): event
        case .deleted(let event): event
        }
    }

    public init?(payload: any DomainEvent) {
        switch payload {
        case let event as PersonaCreated: self = .created(event)
        case let event as PersonaRevised: self = .revised(event)
        case let event as PersonaDeleted: self = .deleted(event)
        default: return nil
        }
    }
}
