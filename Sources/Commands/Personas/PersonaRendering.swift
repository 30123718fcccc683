import Events
import Foundation
import Synchronization

/// Renders persona versions: checks the caller's variables against the version's variables
/// schema, takes the parsed template from the cache (by template hash: a version is immutable, so
/// a cached parse can never be stale), and renders it within the template limits. It needs no
/// language model, so it keeps working while the model is down.
public final class PersonaRendering: Sendable {
    public let limits: PromptTemplate.Limits
    private let cache: Mutex<[String: PromptTemplate]> = Mutex([:])
    private let capacity: Int

    public init(limits: PromptTemplate.Limits = .init(), capacity: Int = 512) {
        self.limits = limits
        self.capacity = max(1, capacity)
    }

    /// The parsed template of `version`, parsed at most once per hash while it stays cached.
    public func template(of version: PersonaDecider.Version) throws -> PromptTemplate {
        if let cached = cache.withLock({ $0[version.templateHash] }) { return cached }
        let parsed = try PersonaRules.parse(version.definition.template, limits: limits)
        cache.withLock { entries in
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[version.templateHash] = parsed
        }
        return parsed
    }

    /// The rendered prompt. Variables that break the version's schema are a 422 listing each
    /// pointer; a variable named like a persona field is refused (it would shadow the field).
    public func render(_ version: PersonaDecider.Version, variables: [String: JSONValue]) throws -> String {
        if let clash = Set(variables.keys).intersection(PersonaRules.fields).sorted().first {
            let violation = JSONSchema.Violation(pointer: "/\(clash)", message: "is a persona field, not a variable")
            throw DomainError(.invalid, code: .personaVariablesInvalid, "context variable '\(clash)' would shadow the persona's field", violations: [violation])
        }
        if let document = version.definition.variablesSchema, let schema = try? JSONSchema(document) {
            let broken = schema.validate(.object(variables))
            guard broken.isEmpty else {
                throw DomainError(
                    .invalid, code: .personaVariablesInvalid,
                    "the context variables break the persona's schema: \(broken.map(\.description).joined(separator: "; "))", violations: broken)
            }
        }
        do {
            return try template(of: version).render(version.definition.templateContext(variables: variables))
        } catch let error as TemplateError {
            throw DomainError(
                .invalid, code: error.kind == .limit ? .personaTemplateLimit : .personaTemplateInvalid, "the template could not render: \(error.description)",
                violations: [JSONSchema.Violation(pointer: "/template", message: error.description)])
        }
    }
}

/// Personas as agents use them: checks that an agent may speak as a persona, and resolves and
/// renders it when a run is requested (from the persona's streams, so a moved label counts at
/// once). The result goes into the run's request event, so the run and its replay are exact.
public struct PersonaPrompts: Sendable {
    public let personas: StreamStateCache<PersonaDecider>
    public let releases: StreamStateCache<PersonaReleaseDecider>
    let rendering: PersonaRendering

    public init(store: any EventStore, rendering: PersonaRendering) {
        personas = StreamStateCache(handler: CommandHandler(store: store))
        releases = StreamStateCache(handler: CommandHandler(store: store))
        self.rendering = rendering
    }

    /// A persona's state and its release state, both at their current versions, whose versions
    /// are read in one query.
    public func current(_ personaID: UUID) async throws -> (persona: PersonaDecider.State, version: Int64, release: PersonaReleaseDecider.State) {
        let personaStream = PersonaDecider.streamID(personaID).description
        let releaseStream = PersonaReleaseDecider.streamID(personaID).description
        let versions = try await personas.handler.store.streamVersions([personaStream, releaseStream])
        let (persona, version) = try await personas.load(personaStream, current: versions[personaStream] ?? 0)
        let (release, _) = try await releases.load(releaseStream, current: versions[releaseStream] ?? 0)
        return (persona, version, release)
    }

    static func unavailable(_ message: String) -> DomainError { DomainError(.invalid, code: .agentPersonaUnavailable, message) }

    /// The version `persona` names now; refused unless it exists and belongs to `owner`.
    public func resolve(_ persona: AgentPersona, owner: String) async throws -> PersonaDecider.Version {
        let (state, _, release) = try await current(persona.personaID)
        guard state.exists, state.ownerID == owner else { throw Self.unavailable("persona \(persona.personaID.uuidString.lowercased()) does not exist or is not the agent owner's") }
        if let label = persona.label {
            guard let number = release.labels[label], let version = state.version(number) else {
                throw Self.unavailable("the persona has no label '\(label)'")
            }
            return version
        }
        guard let number = persona.version, let version = state.version(number) else {
            throw Self.unavailable("the persona has no version \(persona.version ?? 0) (latest is \(state.versions.count))")
        }
        return version
    }

    /// The persona rendered with the run's parameters as context variables.
    public func render(_ persona: AgentPersona, owner: String, parameters: [String: JSONValue]) async throws -> AgentExecutionPersona {
        let version = try await resolve(persona, owner: owner)
        let prompt = try rendering.render(version, variables: parameters)
        return AgentExecutionPersona(
            personaID: persona.personaID, version: version.number, label: persona.label, templateHash: version.templateHash, renderedPrompt: prompt)
    }
}

extension PersonaDefinition {
    /// The seeds' example persona and a template in the seeds' constructs (a joined trait list,
    /// `if` around the examples, `for` over them): the golden test's input, and what `make bench`
    /// renders beside Jinja2.
    public static let seedExample = PersonaDefinition(
        name: "Ada", role: "a patient mathematics tutor",
        personality: PersonaPersonality(tone: "warm", traits: ["patient", "precise", "encouraging"], style: "Socratic"),
        fewShotExamples: [
            PersonaExample(userInput: "What is 7 x 8?", assistantResponse: "What is 7 x 4? Now double it."),
            PersonaExample(userInput: "Is 0 even?", assistantResponse: "Which numbers divide evenly by 2? Try 0 / 2."),
        ],
        instructions: "Answer in at most three sentences.",
        template: """
            You are {{ name }}, {{ role }}.

            Personality:
            - Tone: {{ personality.tone }}
            - Traits: {{ personality.traits | array.join ', ' }}
            - Style: {{ personality.style }}

            {{ if few_shot_examples }}Examples:
            {{ for example in few_shot_examples }}
            User: {{ example.user_input }}
            Assistant: {{ example.assistant_response }}
            {{ end }}{{ end }}
            {{ instructions }}

            """,
        variablesSchema: nil)
}
