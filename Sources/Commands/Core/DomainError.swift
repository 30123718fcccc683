/// A broken invariant: the command was understood and refused. The API answers 4xx with
/// `code` and `message`, both safe to show.
public struct DomainError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// The input is malformed or out of range (422).
        case invalid
        /// The target does not exist, or the caller may not know it does (404).
        case notFound
        /// The state forbids the command, e.g. a deleted agent (409).
        case conflict
        /// The input is larger than the configured bound, e.g. sandbox code (413).
        case tooLarge
    }

    /// Stable and machine-readable, e.g. `agent.deleted`. Each module declares its codes as
    /// constants (`AgentErrorCodes.swift`, ...), so callers match on a constant, never a string.
    public struct Code: Hashable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
        public let rawValue: String

        public init(_ rawValue: String) { self.rawValue = rawValue }
        public init(stringLiteral value: String) { rawValue = value }
        public var description: String { rawValue }
    }

    public let kind: Kind
    public let code: Code
    public let message: String
    /// Each failing field, by JSON pointer, where the input was checked against a schema: the
    /// problem document lists them all (`errors`), not only the first.
    public let violations: [JSONSchema.Violation]

    public init(_ kind: Kind, code: Code, _ message: String, violations: [JSONSchema.Violation] = []) {
        self.kind = kind
        self.code = code
        self.message = message
        self.violations = violations
    }

    public var description: String { "\(code): \(message)" }
}
