import Events
import Foundation

/// A prompt template in a small, safe subset of Scriban, parsed once (when a persona is saved) and
/// rendered from its parsed form.
///
/// What it has: text, `{{ expression }}`, `{{ if }}` / `{{ else if }}` / `{{ else }}` / `{{ end }}`,
/// `{{ for x in path }}` (with `for.index`, `for.first`, `for.last`), member access on plain JSON
/// values (`a.b`, `a[0]`, `a["key"]`), `!`, `==`, `!=`, `<`, `<=`, `>`, `>=`, `&&`, `||`, literals,
/// the pipes `array.join`, `string.upcase`, `string.downcase`, `size` (also `array.size` and
/// `string.size`) and `default` (also `object.default`), `#` comments, and the whitespace
/// controls `{{~ ~}}` (non-greedy) and `{{- -}}` (greedy), as Scriban has them.
///
/// What it refuses, at parse time, with a line and a column: includes and loaders, assignment,
/// ranges, `while` and every other statement, functions other than the pipes above, built-in
/// objects (`date`, `math`, `random`, ...), and anything over the size and nesting limits. Nothing
/// in a template can reach the host: values are JSON, and there is nothing else to reach.
///
/// Rendering is bounded: items per loop, total iterations and output bytes (`Limits`). Variable
/// values are data: a value holding `{{ ... }}` or a chat-role marker is written out as it is.
public struct PromptTemplate: Sendable, Equatable {
    public struct Limits: Sendable, Equatable {
        /// Largest template source accepted.
        public var maxSourceBytes: Int
        /// Deepest nesting of blocks, and of parentheses and `!` in an expression.
        public var maxDepth: Int
        /// Most items one loop may iterate.
        public var maxLoopItems: Int
        /// Most loop iterations in one render, all loops together.
        public var maxIterations: Int
        /// Largest rendered text.
        public var maxOutputBytes: Int

        public init(maxSourceBytes: Int = 64 << 10, maxDepth: Int = 16, maxLoopItems: Int = 1000, maxIterations: Int = 10_000, maxOutputBytes: Int = 256 << 10) {
            self.maxSourceBytes = maxSourceBytes
            self.maxDepth = maxDepth
            self.maxLoopItems = maxLoopItems
            self.maxIterations = maxIterations
            self.maxOutputBytes = maxOutputBytes
        }
    }

    /// Where something is in the source: 1-based line and column.
    public struct Position: Sendable, Equatable, CustomStringConvertible {
        public var line: Int
        public var column: Int

        public init(line: Int, column: Int) {
            self.line = line
            self.column = column
        }

        public var description: String { "line \(line), column \(column)" }
    }

    indirect enum Node: Sendable, Equatable {
        case text(String)
        case output(Expression, Position)
        case conditional([(Expression, [Node])], otherwise: [Node])
        case loop(variable: String, over: Expression, body: [Node], Position)

        static func == (lhs: Node, rhs: Node) -> Bool {
            switch (lhs, rhs) {
            case (.text(let a), .text(let b)): a == b
            case (.output(let a, let p), .output(let b, let q)): a == b && p == q
            case (.conditional(let a, let x), .conditional(let b, let y)):
                x == y && a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
            case (.loop(let v, let o, let b, let p), .loop(let w, let q, let c, let r)): v == w && o == q && b == c && p == r
            default: false
            }
        }
    }

    enum Segment: Sendable, Equatable {
        case member(String)
        case index(Int)
    }

    indirect enum Expression: Sendable, Equatable {
        case literal(JSONValue)
        case path(root: String, [Segment], Position)
        case not(Expression)
        case binary(String, Expression, Expression, Position)
        case pipe(Expression, Filter, [Expression], Position)
    }

    enum Filter: String, Sendable, Equatable, CaseIterable {
        case join = "array.join"
        case upcase = "string.upcase"
        case downcase = "string.downcase"
        case size
        case arraySize = "array.size"
        case stringSize = "string.size"
        case `default`
        case objectDefault = "object.default"

        var arity: Int {
            switch self {
            case .join, .default, .objectDefault: 1
            default: 0
            }
        }
    }

    let nodes: [Node]
    public let limits: Limits
    /// The root names the template reads (its free variables), for checking against a schema.
    public let variables: Set<String>

    /// Parses `source`; throws `TemplateError` (syntax or limit) with where it went wrong.
    public init(_ source: String, limits: Limits = .init()) throws {
        guard source.utf8.count <= limits.maxSourceBytes else {
            throw TemplateError(.limit, "the template is \(source.utf8.count) bytes; the limit is \(limits.maxSourceBytes)", at: Position(line: 1, column: 1))
        }
        var parser = TemplateParser(source: source, limits: limits)
        nodes = try parser.parse()
        variables = parser.freeVariables
        self.limits = limits
    }

    /// Built-in object names of Scriban's library, refused as variables so that a template can
    /// never ask for the time, randomness, or the host.
    static let builtins: Set<String> = [
        "array", "date", "html", "math", "object", "regex", "string", "timespan", "random", "this", "include", "environment", "blank", "empty",
    ]

    /// Statements Scriban has that this engine does not, each refused with its reason.
    static let refusedStatements: [String: String] = [
        "while": "while loops are not allowed",
        "include": "includes are not allowed",
        "import": "import is not allowed",
        "func": "functions cannot be defined",
        "capture": "capture is not allowed (it assigns a variable)",
        "with": "with is not allowed",
        "wrap": "wrap is not allowed",
        "readonly": "readonly is not allowed",
        "ret": "ret is not allowed",
        "tablerow": "tablerow is not allowed",
        "case": "case/when is not supported",
        "when": "case/when is not supported",
        "break": "break is not supported",
        "continue": "continue is not supported",
    ]
}

/// Why a template did not parse or render.
public struct TemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// The source is not in the supported subset.
        case syntax
        /// A size, nesting, loop or output limit was reached.
        case limit
        /// A value did not fit what the template did with it (a join of a string, ...).
        case render
    }

    public var kind: Kind
    public var message: String
    public var position: PromptTemplate.Position

    public init(_ kind: Kind, _ message: String, at position: PromptTemplate.Position) {
        self.kind = kind
        self.message = message
        self.position = position
    }

    public var description: String { "\(message) (\(position))" }
}

/// The parser: a scanner over text and `{{ }}` blocks, and an explicit stack of open blocks, so a
/// template nested ten thousand deep is refused at the limit without deep recursion.
struct TemplateParser {
    let source: [UInt8]
    let limits: PromptTemplate.Limits
    var offset = 0
    var freeVariables: Set<String> = []
    /// Loop variables in scope.
    var scope: [String] = []

    /// Where each line starts, and how many characters come before each byte, for positions.
    let lineStarts: [Int]
    let charactersBefore: [Int32]

    init(source: String, limits: PromptTemplate.Limits) {
        let bytes = Array(source.utf8)
        self.source = bytes
        self.limits = limits
        lineStarts = [0] + bytes.indices.filter { bytes[$0] == 0x0A }.map { $0 + 1 }
        var counts = [Int32](repeating: 0, count: bytes.count + 1)
        for index in bytes.indices { counts[index + 1] = counts[index] + (bytes[index] & 0xC0 != 0x80 ? 1 : 0) }
        charactersBefore = counts
    }

    /// An open block: what it is, where it started, and the nodes gathered so far.
    struct Frame {
        enum Kind { case root, conditional, loop }
        var kind: Kind
        var position: PromptTemplate.Position
        var nodes: [PromptTemplate.Node] = []
        /// conditional: the branches closed so far, and the open branch's condition (nil: else).
        var branches: [(PromptTemplate.Expression, [PromptTemplate.Node])] = []
        var condition: PromptTemplate.Expression?
        var sawElse = false
        /// loop
        var variable = ""
        var sequence: PromptTemplate.Expression?
    }

    func position(of offset: Int) -> PromptTemplate.Position {
        var low = 0
        var high = lineStarts.count - 1
        while low < high {
            let middle = (low + high + 1) / 2
            if lineStarts[middle] <= offset { low = middle } else { high = middle - 1 }
        }
        let start = lineStarts[low]
        let column = 1 + Int(charactersBefore[min(offset, source.count)] - charactersBefore[start])
        return .init(line: low + 1, column: column)
    }

    mutating func parse() throws -> [PromptTemplate.Node] {
        var stack = [Frame(kind: .root, position: position(of: 0))]
        var pendingText: [UInt8] = []
        var trimNextLeading: UInt8?  // "~" or "-" from the previous block's close
        func flushText(_ stack: inout [Frame], _ text: inout [UInt8]) {
            if !text.isEmpty { stack[stack.count - 1].nodes.append(.text(String(decoding: text, as: UTF8.self))) }
            text = []
        }
        while offset < source.count {
            guard let open = find("{{", from: offset) else {
                pendingText += Self.trimLeading(source[offset...], trimNextLeading)
                trimNextLeading = nil
                offset = source.count
                break
            }
            var text = Array(source[offset..<open])
            text = Self.trimLeading(text[...], trimNextLeading)
            trimNextLeading = nil
            var codeStart = open + 2
            if codeStart < source.count, source[codeStart] == UInt8(ascii: "~") || source[codeStart] == UInt8(ascii: "-") {
                text = Self.trimTrailing(text, source[codeStart])
                codeStart += 1
            }
            pendingText += text
            let (close, codeEnd, trim) = try findClose(from: codeStart, openedAt: open)
            trimNextLeading = trim
            offset = close
            let code = Array(source[codeStart..<codeEnd])
            flushText(&stack, &pendingText)
            try statement(code, at: codeStart, stack: &stack)
        }
        flushText(&stack, &pendingText)
        guard stack.count == 1 else {
            let open = stack[stack.count - 1]
            throw TemplateError(.syntax, "this block is never closed with {{ end }}", at: open.position)
        }
        return stack[0].nodes
    }

    func find(_ needle: String, from start: Int) -> Int? {
        let bytes = Array(needle.utf8)
        var index = start
        while index + bytes.count <= source.count {
            if source[index] == bytes[0] && source[index + 1] == bytes[1] { return index }
            index += 1
        }
        return nil
    }

    /// The end of a code block: `}}` outside a string. Returns the offset after it, the end of
    /// the code, and the whitespace control before it.
    func findClose(from start: Int, openedAt open: Int) throws -> (Int, Int, UInt8?) {
        var index = start
        var quote: UInt8?
        while index < source.count {
            let byte = source[index]
            if let open = quote {
                if byte == UInt8(ascii: "\\") { index += 2; continue }
                if byte == open { quote = nil }
            } else if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'") || byte == UInt8(ascii: "`") {
                quote = byte
            } else if byte == UInt8(ascii: "}"), index + 1 < source.count, source[index + 1] == UInt8(ascii: "}") {
                if index > start, source[index - 1] == UInt8(ascii: "~") || source[index - 1] == UInt8(ascii: "-") {
                    return (index + 2, index - 1, source[index - 1])
                }
                return (index + 2, index, nil)
            } else if byte == UInt8(ascii: "{"), index + 1 < source.count, source[index + 1] == UInt8(ascii: "{") {
                throw TemplateError(.syntax, "a code block cannot contain '{{'", at: position(of: index))
            }
            index += 1
        }
        throw TemplateError(.syntax, "'{{' is never closed with '}}'", at: position(of: open))
    }

    static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0D }

    /// Whitespace removed after a block closed with `~}}` (spaces, tabs and one newline) or
    /// `-}}` (all whitespace).
    static func trimLeading(_ text: ArraySlice<UInt8>, _ mode: UInt8?) -> [UInt8] {
        guard let mode else { return Array(text) }
        var index = text.startIndex
        if mode == UInt8(ascii: "-") {
            while index < text.endIndex, isSpace(text[index]) || text[index] == 0x0A { index += 1 }
        } else {
            while index < text.endIndex, isSpace(text[index]) { index += 1 }
            if index < text.endIndex, text[index] == 0x0A { index += 1 }
        }
        return Array(text[index...])
    }

    /// Whitespace removed before a block opened with `{{~` (spaces and tabs back to the line's
    /// start) or `{{-` (all whitespace).
    static func trimTrailing(_ text: [UInt8], _ mode: UInt8) -> [UInt8] {
        var end = text.count
        if mode == UInt8(ascii: "-") {
            while end > 0, isSpace(text[end - 1]) || text[end - 1] == 0x0A { end -= 1 }
        } else {
            while end > 0, isSpace(text[end - 1]) { end -= 1 }
        }
        return Array(text[..<end])
    }

    mutating func statement(_ code: [UInt8], at start: Int, stack: inout [Frame]) throws {
        var lexer = try TemplateLexer(code, base: start, parser: self)
        guard let first = lexer.peek() else { return }  // an empty block or only a comment
        let at = first.position
        if case .identifier(let word) = first.kind {
            if let reason = PromptTemplate.refusedStatements[word] { throw TemplateError(.syntax, reason, at: at) }
            switch word {
            case "if":
                lexer.next()
                try push(.conditional, at: at, stack: &stack)
                stack[stack.count - 1].condition = try expression(&lexer)
                try lexer.expectEnd()
                return
            case "else":
                lexer.next()
                guard stack.count > 1, stack[stack.count - 1].kind == .conditional, !stack[stack.count - 1].sawElse else {
                    throw TemplateError(.syntax, "else without an open if", at: at)
                }
                var frame = stack.removeLast()
                frame.branches.append((frame.condition!, frame.nodes))
                frame.nodes = []
                if case .identifier("if")? = lexer.peek()?.kind {
                    lexer.next()
                    frame.condition = try expression(&lexer)
                } else {
                    frame.condition = nil
                    frame.sawElse = true
                }
                try lexer.expectEnd()
                stack.append(frame)
                return
            case "end":
                lexer.next()
                try lexer.expectEnd()
                guard stack.count > 1 else { throw TemplateError(.syntax, "end without an open if or for", at: at) }
                let frame = stack.removeLast()
                let node: PromptTemplate.Node
                switch frame.kind {
                case .conditional:
                    var branches = frame.branches
                    if let condition = frame.condition { branches.append((condition, frame.nodes)) }
                    node = .conditional(branches, otherwise: frame.sawElse ? frame.nodes : [])
                case .loop:
                    scope.removeLast()
                    node = .loop(variable: frame.variable, over: frame.sequence!, body: frame.nodes, frame.position)
                case .root:
                    throw TemplateError(.syntax, "end without an open block", at: at)
                }
                stack[stack.count - 1].nodes.append(node)
                return
            case "for":
                lexer.next()
                guard case .identifier(let variable)? = lexer.peek()?.kind, !variable.contains(".") else {
                    throw TemplateError(.syntax, "for needs a variable name: for item in items", at: lexer.peek()?.position ?? at)
                }
                lexer.next()
                guard case .identifier("in")? = lexer.peek()?.kind else {
                    throw TemplateError(.syntax, "for needs 'in': for item in items", at: lexer.peek()?.position ?? at)
                }
                lexer.next()
                let sequence = try expression(&lexer)
                try lexer.expectEnd()
                try push(.loop, at: at, stack: &stack)
                stack[stack.count - 1].variable = variable
                stack[stack.count - 1].sequence = sequence
                scope.append(variable)
                return
            default:
                break
            }
        }
        let value = try expression(&lexer)
        try lexer.expectEnd()
        stack[stack.count - 1].nodes.append(.output(value, at))
    }

    mutating func push(_ kind: Frame.Kind, at: PromptTemplate.Position, stack: inout [Frame]) throws {
        guard stack.count <= limits.maxDepth else {
            throw TemplateError(.limit, "blocks are nested deeper than \(limits.maxDepth)", at: at)
        }
        stack.append(Frame(kind: kind, position: at))
    }

    // MARK: expressions

    mutating func expression(_ lexer: inout TemplateLexer, depth: Int = 0) throws -> PromptTemplate.Expression {
        var value = try orExpression(&lexer, depth: depth)
        while case .symbol("|")? = lexer.peek()?.kind {
            let bar = lexer.next()!
            guard case .identifier(let name)? = lexer.peek()?.kind else {
                throw TemplateError(.syntax, "a pipe needs a function after '|'", at: bar.position)
            }
            let at = lexer.next()!.position
            guard let filter = PromptTemplate.Filter(rawValue: name) else {
                let known = PromptTemplate.Filter.allCases.map(\.rawValue).joined(separator: ", ")
                throw TemplateError(.syntax, "unknown function '\(name)'; the pipes are \(known)", at: at)
            }
            var arguments: [PromptTemplate.Expression] = []
            while let token = lexer.peek(), token.kind != .symbol("|") {
                arguments.append(try primary(&lexer, depth: depth + 1))
            }
            guard arguments.count == filter.arity else {
                throw TemplateError(.syntax, "\(name) takes \(filter.arity) argument\(filter.arity == 1 ? "" : "s"), not \(arguments.count)", at: at)
            }
            value = .pipe(value, filter, arguments, at)
        }
        return value
    }

    mutating func orExpression(_ lexer: inout TemplateLexer, depth: Int) throws -> PromptTemplate.Expression {
        var value = try andExpression(&lexer, depth: depth)
        while case .symbol("||")? = lexer.peek()?.kind {
            let at = lexer.next()!.position
            value = .binary("||", value, try andExpression(&lexer, depth: depth), at)
        }
        return value
    }

    mutating func andExpression(_ lexer: inout TemplateLexer, depth: Int) throws -> PromptTemplate.Expression {
        var value = try comparison(&lexer, depth: depth)
        while case .symbol("&&")? = lexer.peek()?.kind {
            let at = lexer.next()!.position
            value = .binary("&&", value, try comparison(&lexer, depth: depth), at)
        }
        return value
    }

    mutating func comparison(_ lexer: inout TemplateLexer, depth: Int) throws -> PromptTemplate.Expression {
        let left = try unary(&lexer, depth: depth)
        if case .symbol(let op)? = lexer.peek()?.kind, ["==", "!=", "<", "<=", ">", ">="].contains(op) {
            let at = lexer.next()!.position
            return .binary(op, left, try unary(&lexer, depth: depth), at)
        }
        return left
    }

    mutating func unary(_ lexer: inout TemplateLexer, depth: Int) throws -> PromptTemplate.Expression {
        if case .symbol("!")? = lexer.peek()?.kind {
            let at = lexer.next()!.position
            guard depth < limits.maxDepth else { throw TemplateError(.limit, "the expression is nested deeper than \(limits.maxDepth)", at: at) }
            return .not(try unary(&lexer, depth: depth + 1))
        }
        return try primary(&lexer, depth: depth)
    }

    mutating func primary(_ lexer: inout TemplateLexer, depth: Int) throws -> PromptTemplate.Expression {
        guard let token = lexer.next() else {
            throw TemplateError(.syntax, "an expression is missing", at: lexer.endPosition)
        }
        switch token.kind {
        case .string(let text): return .literal(.string(text))
        case .number(let value): return .literal(.number(value))
        case .symbol("("):
            guard depth < limits.maxDepth else { throw TemplateError(.limit, "the expression is nested deeper than \(limits.maxDepth)", at: token.position) }
            let inner = try expression(&lexer, depth: depth + 1)
            guard case .symbol(")")? = lexer.next()?.kind else { throw TemplateError(.syntax, "'(' is never closed", at: token.position) }
            return inner
        case .identifier(let name):
            switch name {
            case "true": return .literal(.bool(true))
            case "false": return .literal(.bool(false))
            case "null": return .literal(.null)
            default: break
            }
            return try path(name, at: token.position, &lexer)
        case .symbol(let symbol):
            throw TemplateError(.syntax, "unexpected '\(symbol)'", at: token.position)
        }
    }

    mutating func path(_ dotted: String, at: PromptTemplate.Position, _ lexer: inout TemplateLexer) throws -> PromptTemplate.Expression {
        let parts = dotted.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.allSatisfy({ !$0.isEmpty }) else { throw TemplateError(.syntax, "'\(dotted)' is not a valid name", at: at) }
        let root = parts[0]
        if root.hasPrefix("$") { throw TemplateError(.syntax, "'$' variables are not allowed", at: at) }
        let isLoopInfo = root == "for" && !scope.isEmpty && parts.count == 2
        if !isLoopInfo, PromptTemplate.refusedStatements[root] != nil || ["if", "else", "end", "for", "in"].contains(root) {
            throw TemplateError(.syntax, "'\(root)' cannot be used in an expression", at: at)
        }
        if PromptTemplate.builtins.contains(root) {
            throw TemplateError(.syntax, "'\(root)' is a built-in object; only the pipes (\(PromptTemplate.Filter.allCases.map(\.rawValue).joined(separator: ", "))) may be used", at: at)
        }
        if parts.contains(where: { $0.hasPrefix("__") }) {
            throw TemplateError(.syntax, "'\(dotted)' names a member that does not exist on plain values", at: at)
        }
        var segments = parts.dropFirst().map { PromptTemplate.Segment.member($0) }
        while let next = lexer.peekAdjacent() {
            if case .symbol(".") = next.kind {
                lexer.next()
                guard let member = lexer.peekAdjacent(), case .identifier(let names) = member.kind,
                    names.split(separator: ".", omittingEmptySubsequences: false).allSatisfy({ !$0.isEmpty && !$0.hasPrefix("__") })
                else { throw TemplateError(.syntax, "a member name must follow '.'", at: next.position) }
                lexer.next()
                segments += names.split(separator: ".").map { .member(String($0)) }
                continue
            }
            guard case .symbol("[") = next.kind else { break }
            let open = lexer.next()!
            switch lexer.next()?.kind {
            case .number(let value)? where value >= 0 && value == value.rounded() && value < 1e9: segments.append(.index(Int(value)))
            case .string(let key)?: segments.append(.member(key))
            default: throw TemplateError(.syntax, "an index is a whole number or a quoted name", at: open.position)
            }
            guard case .symbol("]")? = lexer.next()?.kind else { throw TemplateError(.syntax, "'[' is never closed", at: open.position) }
        }
        if !isLoopInfo && !scope.contains(root) { freeVariables.insert(root) }
        return .path(root: root, segments, at)
    }
}

/// Tokens of one code block.
struct TemplateLexer {
    struct Token: Equatable {
        enum Kind: Equatable {
            case identifier(String)
            case string(String)
            case number(Double)
            case symbol(String)
        }
        var kind: Kind
        var position: PromptTemplate.Position
        /// Whether whitespace came before it (`a[0]` indexes; `a [0]` would not).
        var spaced: Bool
    }

    var tokens: [Token] = []
    var index = 0
    let endPosition: PromptTemplate.Position

    init(_ code: [UInt8], base: Int, parser: TemplateParser) throws {
        var i = 0
        var spaced = true
        endPosition = parser.position(of: base + code.count)
        func at(_ offset: Int) -> PromptTemplate.Position { parser.position(of: base + offset) }
        while i < code.count {
            let byte = code[i]
            if TemplateParser.isSpace(byte) || byte == 0x0A {
                i += 1
                spaced = true
                continue
            }
            if byte == UInt8(ascii: "#") { break }  // a comment to the end of the block
            let start = i
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'") || byte == UInt8(ascii: "`") {
                var text: [UInt8] = []
                i += 1
                var closed = false
                while i < code.count {
                    let c = code[i]
                    if c == byte { closed = true; i += 1; break }
                    if c == UInt8(ascii: "\\"), byte != UInt8(ascii: "`"), i + 1 < code.count {
                        let escaped = code[i + 1]
                        switch escaped {
                        case UInt8(ascii: "n"): text.append(0x0A)
                        case UInt8(ascii: "t"): text.append(0x09)
                        case UInt8(ascii: "r"): text.append(0x0D)
                        default: text.append(escaped)
                        }
                        i += 2
                        continue
                    }
                    text.append(c)
                    i += 1
                }
                guard closed else { throw TemplateError(.syntax, "a string is never closed", at: at(start)) }
                tokens.append(Token(kind: .string(String(decoding: text, as: UTF8.self)), position: at(start), spaced: spaced))
            } else if (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) {
                while i < code.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(code[i]) || code[i] == UInt8(ascii: ".") {
                    if code[i] == UInt8(ascii: "."), i + 1 < code.count, code[i + 1] == UInt8(ascii: ".") {
                        throw TemplateError(.syntax, "ranges are not allowed", at: at(i))
                    }
                    i += 1
                }
                let text = String(decoding: code[start..<i], as: UTF8.self)
                guard let value = Double(text), text.filter({ $0 == "." }).count <= 1, value.isFinite else {
                    throw TemplateError(.syntax, "'\(text)' is not a number", at: at(start))
                }
                tokens.append(Token(kind: .number(value), position: at(start), spaced: spaced))
            } else if Self.isNameStart(byte) {
                while i < code.count, Self.isNameStart(code[i]) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(code[i]) || code[i] == UInt8(ascii: ".") {
                    if code[i] == UInt8(ascii: "."), i + 1 < code.count, code[i + 1] == UInt8(ascii: ".") {
                        throw TemplateError(.syntax, "ranges are not allowed", at: at(i))
                    }
                    i += 1
                }
                tokens.append(Token(kind: .identifier(String(decoding: code[start..<i], as: UTF8.self)), position: at(start), spaced: spaced))
            } else {
                let two = i + 1 < code.count ? String(decoding: code[i...i + 1], as: UTF8.self) : ""
                if ["==", "!=", "<=", ">=", "&&", "||"].contains(two) {
                    tokens.append(Token(kind: .symbol(two), position: at(start), spaced: spaced))
                    i += 2
                } else if two == ".." {
                    throw TemplateError(.syntax, "ranges are not allowed", at: at(start))
                } else {
                    let one = String(UnicodeScalar(byte))
                    switch one {
                    case "=": throw TemplateError(.syntax, "assignment is not allowed", at: at(start))
                    case "|", "!", "<", ">", "(", ")", "[", "]", ".": tokens.append(Token(kind: .symbol(one), position: at(start), spaced: spaced))
                    case "@": throw TemplateError(.syntax, "function aliases are not allowed", at: at(start))
                    case "{": throw TemplateError(.syntax, "object literals are not allowed", at: at(start))
                    default: throw TemplateError(.syntax, "unexpected character '\(byte < 0x80 ? one : "?")'", at: at(start))
                    }
                    i += 1
                }
            }
            spaced = false
        }
    }

    static func isNameStart(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || byte == UInt8(ascii: "_")
            || byte == UInt8(ascii: "$")
    }

    func peek() -> Token? { index < tokens.count ? tokens[index] : nil }
    /// The next token only when nothing separates it from the previous one.
    func peekAdjacent() -> Token? { peek().flatMap { $0.spaced ? nil : $0 } }

    @discardableResult mutating func next() -> Token? {
        defer { index += 1 }
        return peek()
    }

    func expectEnd() throws {
        if let token = peek() {
            if case .symbol("=") = token.kind { throw TemplateError(.syntax, "assignment is not allowed", at: token.position) }
            throw TemplateError(.syntax, "one statement per block; unexpected text here", at: token.position)
        }
    }
}
