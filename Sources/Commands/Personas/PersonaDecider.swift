import Crypto
import Events
import Foundation

/// One persona (stream `persona-<id>`): each definition event is an immutable version, numbered
/// by its stream version. A definition is checked against `PersonaRules` and its template parsed
/// before it is recorded, so every stored version renders.
public enum PersonaDecider: Decider {
    public enum Command: Sendable, Equatable {
        case create(personaID: UUID, ownerID: String, definition: PersonaDefinition, limits: PromptTemplate.Limits, now: Date)
        /// A new version; the same definition as the latest appends nothing.
        case revise(definition: PersonaDefinition, limits: PromptTemplate.Limits, now: Date)
        case delete(now: Date)
    }

    public struct Version: Sendable, Equatable {
        public var number: Int
        public var definition: PersonaDefinition
        public var templateHash: String
        public var createdAt: Date
    }

    public struct State: Sendable, Equatable {
        public var personaID: UUID?
        public var ownerID: String?
        public var versions: [Version] = []
        public var deleted = false

        public var exists: Bool { personaID != nil && !deleted }
        public var latest: Version? { versions.last }

        /// Version `number`, if recorded.
        public func version(_ number: Int) -> Version? {
            guard number >= 1, number <= versions.count else { return nil }
            return versions[number - 1]
        }
    }

    public static let category = "persona"
    public static let initialState = State()

    public static func streamID(_ personaID: UUID) -> StreamID { StreamID(category: category, id: personaID) }

    public static func decide(_ command: Command, state: State) throws -> [PersonaEvent] {
        switch command {
        case .create(let personaID, let ownerID, let definition, let limits, let now):
            guard state.personaID == nil else { throw DomainError(.conflict, code: .personaExists, "persona \(personaID) already exists") }
            let hash = try PersonaRules.check(definition, limits: limits)
            return [.created(PersonaCreated(personaID: personaID, ownerID: ownerID, definition: definition, templateHash: hash, createdAt: now))]
        case .revise(let definition, let limits, let now):
            let personaID = try require(state)
            if state.latest?.definition == definition { return [] }
            let hash = try PersonaRules.check(definition, limits: limits)
            return [.revised(PersonaRevised(
                personaID: personaID, version: state.versions.count + 1, definition: definition, templateHash: hash, revisedAt: now))]
        case .delete(let now):
            let personaID = try require(state)
            return [.deleted(PersonaDeleted(personaID: personaID, deletedAt: now))]
        }
    }

    public static func evolve(_ state: State, _ event: PersonaEvent) -> State {
        var state = state
        switch event {
        case .created(let created):
            state.personaID = created.personaID
            state.ownerID = created.ownerID
            state.versions = [Version(number: 1, definition: created.definition, templateHash: created.templateHash, createdAt: created.createdAt)]
        case .revised(let revised):
            state.versions.append(Version(
                number: state.versions.count + 1, definition: revised.definition, templateHash: revised.templateHash, createdAt: revised.revisedAt))
        case .deleted:
            state.deleted = true
        }
        return state
    }

    static func require(_ state: State) throws -> UUID {
        guard let personaID = state.personaID else { throw notFound }
        guard !state.deleted else { throw DomainError(.conflict, code: .personaDeleted, "the persona was deleted") }
        return personaID
    }

    public static let notFound = DomainError(.notFound, code: .personaNotFound, "no such persona")
}

/// The rules a persona definition keeps, as a JSON schema (the seed's persona shape), plus what a
/// schema cannot say: the template parses within its limits, the variables schema is one this
/// module can check, and the template reads only the persona's fields and declared variables.
public enum PersonaRules {
    /// The persona's fields a template may read, beside its declared variables.
    public static let fields: Set<String> = ["name", "role", "personality", "few_shot_examples", "instructions"]

    public static let schemaDocument: JSONValue = {
        func text(_ min: Int, _ max: Int) -> JSONValue { .object(["type": "string", "minLength": .number(Double(min)), "maxLength": .number(Double(max))]) }
        return .object([
            "type": "object", "additionalProperties": false,
            "required": ["name", "role", "personality", "template"],
            "properties": .object([
                "name": text(1, 100),
                "role": text(1, 200),
                "personality": .object([
                    "type": "object", "additionalProperties": false, "required": ["tone", "traits", "style"],
                    "properties": .object([
                        "tone": text(1, 100),
                        "traits": .object(["type": "array", "minItems": 1, "maxItems": 20, "items": text(1, 100)]),
                        "style": text(1, 200),
                    ]),
                ]),
                "few_shot_examples": .object([
                    "type": "array", "maxItems": 20,
                    "items": .object([
                        "type": "object", "additionalProperties": false, "required": ["user_input", "assistant_response"],
                        "properties": .object(["user_input": text(1, 4000), "assistant_response": text(1, 4000)]),
                    ]),
                ]),
                "instructions": text(0, 8000),
                "template": text(1, 65536),
                "variables_schema": .object(["type": "object"]),
            ]),
        ])
    }()

    public static let schema = try! JSONSchema(schemaDocument)

    /// Every rule the definition breaks, by pointer (empty when it keeps them all).
    public static func violations(of definition: PersonaDefinition) -> [JSONSchema.Violation] {
        guard let document = try? EventCoding.decode(JSONValue.self, from: EventCoding.encode(definition)) else {
            return [JSONSchema.Violation(pointer: "", message: "cannot be read")]
        }
        return schema.validate(document)
    }

    /// Checks the definition and parses its template; returns the template's hash.
    @discardableResult
    public static func check(_ definition: PersonaDefinition, limits: PromptTemplate.Limits) throws -> String {
        let broken = violations(of: definition)
        guard broken.isEmpty else {
            throw DomainError(.invalid, code: .personaInvalid, "the persona breaks \(broken.count) rule\(broken.count == 1 ? "" : "s"): \(broken.map(\.description).joined(separator: "; "))", violations: broken)
        }
        var declared: Set<String> = []
        if let document = definition.variablesSchema {
            do {
                let schema = try JSONSchema(document)
                declared = Set(schema.declaredProperties)
            } catch let error as JSONSchema.SchemaError {
                let violation = JSONSchema.Violation(pointer: "/variables_schema" + error.pointer, message: error.message)
                throw DomainError(.invalid, code: .personaInvalid, "variables_schema: \(violation.description)", violations: [violation])
            }
            if let clash = declared.intersection(fields).sorted().first {
                let violation = JSONSchema.Violation(pointer: "/variables_schema/properties/\(clash)", message: "is a persona field; choose another variable name")
                throw DomainError(.invalid, code: .personaInvalid, "variables_schema: \(violation.description)", violations: [violation])
            }
        }
        let template = try parse(definition.template, limits: limits)
        if definition.variablesSchema != nil, let unknown = template.variables.subtracting(fields).subtracting(declared).sorted().first {
            let violation = JSONSchema.Violation(pointer: "/template", message: "reads '\(unknown)', which is neither a persona field nor a declared variable")
            throw DomainError(.invalid, code: .personaTemplateInvalid, "the template \(violation.message)", violations: [violation])
        }
        // Members the persona's fields and the declared variables do not have are refused now,
        // not rendered as nothing later.
        var roots = TemplateShape.personaFields
        if let document = definition.variablesSchema, case .record(let variables, _) = TemplateShape(document) {
            roots.merge(variables) { field, _ in field }
        }
        let unknown = template.check(roots)
        guard unknown.isEmpty else {
            let broken = unknown.map { JSONSchema.Violation(pointer: "/template", message: $0.description) }
            throw DomainError(
                .invalid, code: .personaTemplateInvalid, "the template reads what does not exist: \(broken.map(\.message).joined(separator: "; "))",
                violations: broken)
        }
        return hash(definition.template)
    }

    /// The template parsed, or the domain error saying where it went wrong.
    public static func parse(_ source: String, limits: PromptTemplate.Limits) throws -> PromptTemplate {
        do {
            return try PromptTemplate(source, limits: limits)
        } catch let error as TemplateError {
            let violation = JSONSchema.Violation(pointer: "/template", message: error.description)
            throw DomainError(
                error.kind == .limit ? .tooLarge : .invalid, code: error.kind == .limit ? .personaTemplateLimit : .personaTemplateInvalid,
                "the template \(error.kind == .limit ? "is over a limit" : "does not parse"): \(error.description)", violations: [violation])
        }
    }

    /// sha256 of a template, hex: the key its parsed form is cached under.
    public static func hash(_ template: String) -> String {
        SHA256.hash(data: Data(template.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}

extension PersonaDefinition {
    /// What a template sees: the persona's fields, then the caller's variables (which may not
    /// shadow a field).
    public func templateContext(variables: [String: JSONValue]) -> [String: JSONValue] {
        var context = variables
        context["name"] = .string(name)
        context["role"] = .string(role)
        context["personality"] = .object([
            "tone": .string(personality.tone), "traits": .array(personality.traits.map(JSONValue.string)), "style": .string(personality.style),
        ])
        context["few_shot_examples"] = .array(fewShotExamples.map {
            .object(["user_input": .string($0.userInput), "assistant_response": .string($0.assistantResponse)])
        })
        context["instructions"] = .string(instructions)
        return context
    }
}
