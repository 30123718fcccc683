import Events
import Foundation

extension PromptTemplate {
    /// Renders with `context` (the root object's members are the variables). Values are written
    /// as data: nothing in them is parsed. Throws `TemplateError` when a limit is reached or a
    /// value does not fit what the template does with it.
    public func render(_ context: [String: JSONValue]) throws -> String {
        var renderer = TemplateRenderer(limits: limits, globals: context)
        try renderer.run(nodes)
        return String(decoding: renderer.output, as: UTF8.self)
    }
}

struct TemplateRenderer {
    let limits: PromptTemplate.Limits
    let globals: [String: JSONValue]
    var locals: [(String, JSONValue)] = []
    /// `for.index`, `for.first`, ... of the innermost loop.
    var loopInfo: [JSONValue] = []
    var output: [UInt8] = []
    var iterations = 0

    init(limits: PromptTemplate.Limits, globals: [String: JSONValue]) {
        self.limits = limits
        self.globals = globals
        output.reserveCapacity(4096)
    }

    mutating func run(_ nodes: [PromptTemplate.Node]) throws {
        for node in nodes {
            switch node {
            case .text(let text):
                try write(text, at: nil)
            case .output(let expression, let position):
                try write(Self.text(of: try evaluate(expression)), at: position)
            case .conditional(let branches, let otherwise):
                if let branch = try branches.first(where: { try Self.truthy(evaluate($0.0)) }) {
                    try run(branch.1)
                } else {
                    try run(otherwise)
                }
            case .loop(let variable, let sequence, let body, let position):
                let items: [JSONValue]
                switch try evaluate(sequence) {
                case .null: items = []
                case .array(let values): items = values
                case let other: throw TemplateError(.render, "for needs an array, not \(Self.kind(of: other))", at: position)
                }
                guard items.count <= limits.maxLoopItems else {
                    throw TemplateError(.limit, "the loop has \(items.count) items; the limit is \(limits.maxLoopItems)", at: position)
                }
                for (index, item) in items.enumerated() {
                    iterations += 1
                    guard iterations <= limits.maxIterations else {
                        throw TemplateError(.limit, "the template ran more than \(limits.maxIterations) loop iterations", at: position)
                    }
                    locals.append((variable, item))
                    loopInfo.append(.object([
                        "index": .number(Double(index)), "first": .bool(index == 0), "last": .bool(index == items.count - 1),
                        "even": .bool(index % 2 == 0), "odd": .bool(index % 2 == 1),
                    ]))
                    defer {
                        locals.removeLast()
                        loopInfo.removeLast()
                    }
                    try run(body)
                }
            }
        }
    }

    mutating func write(_ text: String, at position: PromptTemplate.Position?) throws {
        guard output.count + text.utf8.count <= limits.maxOutputBytes else {
            throw TemplateError(
                .limit, "the rendered text would exceed \(limits.maxOutputBytes) bytes",
                at: position ?? PromptTemplate.Position(line: 1, column: 1))
        }
        output.append(contentsOf: text.utf8)
    }

    func evaluate(_ expression: PromptTemplate.Expression) throws -> JSONValue {
        switch expression {
        case .literal(let value):
            return value
        case .path(let root, let segments, _):
            var value: JSONValue
            if root == "for", let info = loopInfo.last {
                value = info
            } else if let local = locals.last(where: { $0.0 == root }) {
                value = local.1
            } else {
                value = globals[root] ?? .null
            }
            for segment in segments {
                switch (segment, value) {
                case (.member(let name), .object(let members)): value = members[name] ?? .null
                case (.index(let index), .array(let items)): value = index < items.count ? items[index] : .null
                default: value = .null
                }
            }
            return value
        case .not(let inner):
            return .bool(!Self.truthy(try evaluate(inner)))
        case .binary(let op, let left, let right, let position):
            switch op {
            case "&&":
                guard Self.truthy(try evaluate(left)) else { return .bool(false) }
                return .bool(Self.truthy(try evaluate(right)))
            case "||":
                if Self.truthy(try evaluate(left)) { return .bool(true) }
                return .bool(Self.truthy(try evaluate(right)))
            default: return .bool(try Self.compare(op, try evaluate(left), try evaluate(right), at: position))
            }
        case .pipe(let input, let filter, let arguments, let position):
            let value = try evaluate(input)
            let argument = try arguments.first.map { try evaluate($0) }
            return try apply(filter, to: value, argument: argument, at: position)
        }
    }

    func apply(_ filter: PromptTemplate.Filter, to value: JSONValue, argument: JSONValue?, at position: PromptTemplate.Position) throws -> JSONValue {
        switch filter {
        case .join:
            guard case .array(let items) = value else {
                if case .null = value { return .string("") }
                throw TemplateError(.render, "array.join needs an array, not \(Self.kind(of: value))", at: position)
            }
            let separator = Self.text(of: argument ?? .string(""))
            var joined = ""
            for (index, item) in items.enumerated() {
                if index > 0 { joined += separator }
                joined += Self.text(of: item)
                guard joined.utf8.count <= limits.maxOutputBytes else {
                    throw TemplateError(.limit, "the rendered text would exceed \(limits.maxOutputBytes) bytes", at: position)
                }
            }
            return .string(joined)
        case .upcase: return .string(Self.text(of: value).uppercased())
        case .downcase: return .string(Self.text(of: value).lowercased())
        case .size, .arraySize, .stringSize:
            switch value {
            case .array(let items): return .number(Double(items.count))
            case .string(let text): return .number(Double(text.count))
            case .object(let members): return .number(Double(members.count))
            case .null: return .number(0)
            default: return .number(Double(Self.text(of: value).count))
            }
        case .default, .objectDefault:
            switch value {
            case .null: return argument ?? .null
            case .string(let text) where text.isEmpty: return argument ?? .null
            default: return value
            }
        }
    }

    /// Scriban's truth: only null and false are false.
    static func truthy(_ value: JSONValue) -> Bool {
        switch value {
        case .null: false
        case .bool(let flag): flag
        default: true
        }
    }

    static func compare(_ op: String, _ left: JSONValue, _ right: JSONValue, at position: PromptTemplate.Position) throws -> Bool {
        switch op {
        case "==": return left == right
        case "!=": return left != right
        default: break
        }
        let order: ComparisonResult
        switch (left, right) {
        case (.number(let a), .number(let b)): order = a < b ? .orderedAscending : (a > b ? .orderedDescending : .orderedSame)
        case (.string(let a), .string(let b)): order = a < b ? .orderedAscending : (a > b ? .orderedDescending : .orderedSame)
        default:
            throw TemplateError(.render, "cannot compare \(kind(of: left)) with \(kind(of: right)) using \(op)", at: position)
        }
        switch op {
        case "<": return order == .orderedAscending
        case "<=": return order != .orderedDescending
        case ">": return order == .orderedDescending
        default: return order != .orderedAscending
        }
    }

    static func kind(of value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    /// How a value is written, as Scriban writes it: null as nothing, whole numbers without a
    /// fraction, arrays as `[a, b]`.
    static func text(of value: JSONValue) -> String {
        switch value {
        case .null: return ""
        case .bool(let flag): return flag ? "true" : "false"
        case .number(let number):
            if number == number.rounded(), abs(number) < 1e15 { return String(Int64(number)) }
            return String(number)
        case .string(let text): return text
        case .array(let items): return "[" + items.map(text(of:)).joined(separator: ", ") + "]"
        case .object(let members):
            return "{" + members.keys.sorted().map { "\($0): \(text(of: members[$0]!))" }.joined(separator: ", ") + "}"
        }
    }
}
