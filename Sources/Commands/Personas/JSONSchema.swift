import Events
import Foundation

/// The subset of JSON Schema the Personas module needs: `type` (one or a list), `required`,
/// `properties`, `additionalProperties` (a boolean), `items`, `enum`, `minLength`, `maxLength`,
/// `minItems`, `maxItems`, `minimum` and `maximum`. Annotations (`title`, `description`,
/// `$schema`, `default`, `examples`) are accepted and ignored; any other keyword is refused when
/// the schema is read, so nobody believes a constraint is checked when it is not.
///
/// `validate` lists every failing value by its JSON pointer (RFC 6901), not only the first.
public indirect enum JSONSchema: Sendable, Equatable {
    case schema(Node)

    public struct Node: Sendable, Equatable {
        var types: [String]?
        var required: [String] = []
        var properties: [String: JSONSchema] = [:]
        var additionalProperties = true
        var items: JSONSchema?
        var enumeration: [JSONValue]?
        var minLength: Int?
        var maxLength: Int?
        var minItems: Int?
        var maxItems: Int?
        var minimum: Double?
        var maximum: Double?
    }

    /// One failing value.
    public struct Violation: Sendable, Equatable, Codable, CustomStringConvertible {
        /// Where, as a JSON pointer (`/personality/traits`); `""` is the document itself.
        public var pointer: String
        public var message: String

        public init(pointer: String, message: String) {
            self.pointer = pointer
            self.message = message
        }

        public var description: String { "\(pointer.isEmpty ? "/" : pointer): \(message)" }
    }

    /// Why a schema could not be read.
    public struct SchemaError: Error, Sendable, Equatable, CustomStringConvertible {
        public var pointer: String
        public var message: String
        public var description: String { "\(pointer.isEmpty ? "/" : pointer): \(message)" }
    }

    static let types: Set<String> = ["string", "number", "integer", "boolean", "object", "array", "null"]
    static let annotations: Set<String> = ["title", "description", "$schema", "$id", "default", "examples", "$comment"]
    static let maxDepth = 32

    /// Reads a schema document. Throws `SchemaError` for an unknown keyword or a malformed one.
    public init(_ document: JSONValue) throws {
        self = try Self.read(document, pointer: "", depth: 0)
    }

    private static func read(_ document: JSONValue, pointer: String, depth: Int) throws -> JSONSchema {
        guard depth <= maxDepth else { throw SchemaError(pointer: pointer, message: "the schema is nested deeper than \(maxDepth)") }
        guard case .object(let members) = document else { throw SchemaError(pointer: pointer, message: "a schema is an object") }
        var node = Node()
        for (key, value) in members.sorted(by: { $0.key < $1.key }) {
            let at = pointer + "/" + escape(key)
            switch key {
            case "type":
                switch value {
                case .string(let type): node.types = [type]
                case .array(let list): node.types = try list.map { guard case .string(let type) = $0 else { throw SchemaError(pointer: at, message: "type names are strings") }; return type }
                default: throw SchemaError(pointer: at, message: "type is a name or a list of names")
                }
                if let unknown = node.types?.first(where: { !types.contains($0) }) {
                    throw SchemaError(pointer: at, message: "unknown type '\(unknown)'")
                }
            case "required":
                guard case .array(let list) = value else { throw SchemaError(pointer: at, message: "required is a list of names") }
                node.required = try list.map { guard case .string(let name) = $0 else { throw SchemaError(pointer: at, message: "required names are strings") }; return name }
            case "properties":
                guard case .object(let properties) = value else { throw SchemaError(pointer: at, message: "properties is an object of schemas") }
                for (name, schema) in properties {
                    node.properties[name] = try read(schema, pointer: at + "/" + escape(name), depth: depth + 1)
                }
            case "additionalProperties":
                guard case .bool(let allowed) = value else { throw SchemaError(pointer: at, message: "additionalProperties is true or false here") }
                node.additionalProperties = allowed
            case "items":
                node.items = try read(value, pointer: at, depth: depth + 1)
            case "enum":
                guard case .array(let list) = value, !list.isEmpty else { throw SchemaError(pointer: at, message: "enum is a non-empty list") }
                node.enumeration = list
            case "minLength": node.minLength = try count(value, at)
            case "maxLength": node.maxLength = try count(value, at)
            case "minItems": node.minItems = try count(value, at)
            case "maxItems": node.maxItems = try count(value, at)
            case "minimum": node.minimum = try number(value, at)
            case "maximum": node.maximum = try number(value, at)
            default:
                guard annotations.contains(key) else {
                    throw SchemaError(pointer: at, message: "'\(key)' is not supported; supported: type, required, properties, additionalProperties, items, enum, minLength, maxLength, minItems, maxItems, minimum, maximum")
                }
            }
        }
        return .schema(node)
    }

    private static func count(_ value: JSONValue, _ pointer: String) throws -> Int {
        guard case .number(let number) = value, number >= 0, number == number.rounded(), number < 1e9 else {
            throw SchemaError(pointer: pointer, message: "a count is a whole number, 0 or more")
        }
        return Int(number)
    }

    private static func number(_ value: JSONValue, _ pointer: String) throws -> Double {
        guard case .number(let number) = value else { throw SchemaError(pointer: pointer, message: "a bound is a number") }
        return number
    }

    static func escape(_ key: String) -> String {
        key.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
    }

    /// The properties an object schema declares (empty for any other).
    public var declaredProperties: [String] {
        guard case .schema(let node) = self else { return [] }
        return node.properties.keys.sorted()
    }

    /// Every violation of `value`, by pointer, in document order.
    public func validate(_ value: JSONValue) -> [Violation] {
        var violations: [Violation] = []
        check(value, pointer: "", into: &violations)
        return violations
    }

    private func check(_ value: JSONValue, pointer: String, into violations: inout [Violation]) {
        guard case .schema(let node) = self else { return }
        if let types = node.types, !types.contains(where: { Self.value(value, is: $0) }) {
            violations.append(Violation(pointer: pointer, message: "must be \(types.joined(separator: " or ")), not \(Self.typeName(of: value))"))
            return
        }
        if let allowed = node.enumeration, !allowed.contains(value) {
            violations.append(Violation(pointer: pointer, message: "must be one of \(allowed.map(Self.literal).joined(separator: ", "))"))
        }
        switch value {
        case .string(let text):
            let length = text.count
            if let min = node.minLength, length < min { violations.append(Violation(pointer: pointer, message: "must be at least \(min) characters long")) }
            if let max = node.maxLength, length > max { violations.append(Violation(pointer: pointer, message: "must be at most \(max) characters long")) }
        case .number(let number):
            if let min = node.minimum, number < min { violations.append(Violation(pointer: pointer, message: "must be at least \(Self.literal(.number(min)))")) }
            if let max = node.maximum, number > max { violations.append(Violation(pointer: pointer, message: "must be at most \(Self.literal(.number(max)))")) }
        case .array(let items):
            if let min = node.minItems, items.count < min { violations.append(Violation(pointer: pointer, message: "must have at least \(min) item\(min == 1 ? "" : "s")")) }
            if let max = node.maxItems, items.count > max { violations.append(Violation(pointer: pointer, message: "must have at most \(max) items")) }
            if let schema = node.items {
                for (index, item) in items.enumerated() { schema.check(item, pointer: "\(pointer)/\(index)", into: &violations) }
            }
        case .object(let members):
            for name in node.required where members[name] == nil {
                violations.append(Violation(pointer: pointer + "/" + Self.escape(name), message: "is required"))
            }
            for name in members.keys.sorted() {
                let at = pointer + "/" + Self.escape(name)
                if let schema = node.properties[name] {
                    schema.check(members[name]!, pointer: at, into: &violations)
                } else if !node.additionalProperties {
                    violations.append(Violation(pointer: at, message: "is not an allowed property"))
                }
            }
        default:
            break
        }
    }

    static func value(_ value: JSONValue, is type: String) -> Bool {
        switch (type, value) {
        case ("string", .string), ("boolean", .bool), ("object", .object), ("array", .array), ("null", .null), ("number", .number): true
        case ("integer", .number(let number)): number == number.rounded() && number.isFinite
        default: false
        }
    }

    static func typeName(of value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool: "boolean"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    static func literal(_ value: JSONValue) -> String {
        if case .number(let number) = value, number == number.rounded(), abs(number) < 1e15 { return String(Int64(number)) }
        return String(decoding: (try? EventCoding.encode(value)) ?? Data(), as: UTF8.self)
    }
}
