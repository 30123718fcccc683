import Events
import Foundation

/// What a template may read, known before any render: the persona's fields have fixed shapes,
/// and declared variables have their schema's. A member a shape does not have is refused when
/// the persona is saved (with its line and column), instead of rendering as nothing.
public indirect enum TemplateShape: Sendable, Equatable {
    case text
    case list(TemplateShape)
    /// `open`: members beyond `members` may exist (a schema without `additionalProperties: false`).
    case record([String: TemplateShape], open: Bool)
    /// Anything: a variable nobody declared, a number, a value of an open schema.
    case any

    /// The shape a JSON schema promises.
    public init(_ schema: JSONValue, depth: Int = 0) {
        guard depth < 32, case .object(let members) = schema else {
            self = .any
            return
        }
        let types: [String]
        switch members["type"] {
        case .string(let type)?: types = [type]
        case .array(let list)?: types = list.compactMap(\.stringValue)
        default: types = []
        }
        if types == ["string"] {
            self = .text
        } else if types == ["array"] {
            self = .list(members["items"].map { TemplateShape($0, depth: depth + 1) } ?? .any)
        } else if types == ["object"], case .object(let properties)? = members["properties"] {
            self = .record(properties.mapValues { TemplateShape($0, depth: depth + 1) }, open: members["additionalProperties"] != .bool(false))
        } else {
            self = .any
        }
    }

    /// The persona's own fields, as `PersonaDefinition.templateContext` gives them.
    public static let personaFields: [String: TemplateShape] = [
        "name": .text, "role": .text, "instructions": .text,
        "personality": .record(["tone": .text, "traits": .list(.text), "style": .text], open: false),
        "few_shot_examples": .list(.record(["user_input": .text, "assistant_response": .text], open: false)),
    ]

    static let loopInfo: TemplateShape = .record(["index": .any, "first": .any, "last": .any, "even": .any, "odd": .any], open: false)
}

extension PromptTemplate {
    /// Every member access the shapes rule out, as errors with their positions (in order).
    public func check(_ roots: [String: TemplateShape]) -> [TemplateError] {
        var errors: [TemplateError] = []
        var scope: [(String, TemplateShape)] = []
        func shape(of expression: Expression) -> TemplateShape {
            switch expression {
            case .literal(.string): return .text
            case .literal: return .any
            case .not(let inner):
                _ = shape(of: inner)
                return .any
            case .binary(_, let left, let right, _):
                _ = shape(of: left)
                _ = shape(of: right)
                return .any
            case .pipe(let input, let filter, let arguments, _):
                _ = shape(of: input)
                for argument in arguments { _ = shape(of: argument) }
                switch filter {
                case .join, .upcase, .downcase: return .text
                default: return .any
                }
            case .path(let root, let segments, let position):
                var current: TemplateShape
                var name = root
                if root == "for", !scope.isEmpty {
                    current = TemplateShape.loopInfo
                } else if let local = scope.last(where: { $0.0 == root }) {
                    current = local.1
                } else {
                    current = roots[root] ?? .any
                }
                for segment in segments {
                    switch (segment, current) {
                    case (_, .any):
                        return .any
                    case (.member(let member), .record(let members, let open)):
                        if let next = members[member] {
                            current = next
                        } else if open {
                            return .any
                        } else {
                            errors.append(TemplateError(.syntax, "'\(name)' has no member '\(member)' (it has \(members.keys.sorted().joined(separator: ", ")))", at: position))
                            return .any
                        }
                        name += "." + member
                    case (.index, .list(let element)):
                        current = element
                        name += "[]"
                    case (.member(let member), _):
                        errors.append(TemplateError(.syntax, "'\(name)' is \(current.noun); it has no member '\(member)'", at: position))
                        return .any
                    case (.index, _):
                        errors.append(TemplateError(.syntax, "'\(name)' is \(current.noun); it cannot be indexed", at: position))
                        return .any
                    }
                }
                return current
            }
        }
        func walk(_ nodes: [Node]) {
            for node in nodes {
                switch node {
                case .text: break
                case .output(let expression, _): _ = shape(of: expression)
                case .conditional(let branches, let otherwise):
                    for (condition, body) in branches {
                        _ = shape(of: condition)
                        walk(body)
                    }
                    walk(otherwise)
                case .loop(let variable, let sequence, let body, let position):
                    let element: TemplateShape
                    switch shape(of: sequence) {
                    case .list(let inner): element = inner
                    case .any: element = .any
                    case let other:
                        errors.append(TemplateError(.syntax, "for needs a list, and this is \(other.noun)", at: position))
                        element = .any
                    }
                    scope.append((variable, element))
                    walk(body)
                    scope.removeLast()
                }
            }
        }
        walk(nodes)
        return errors
    }
}

extension TemplateShape {
    var noun: String {
        switch self {
        case .text: "text"
        case .list: "a list"
        case .record: "an object"
        case .any: "a value"
        }
    }
}
