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
