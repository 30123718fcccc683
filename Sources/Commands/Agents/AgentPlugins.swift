import Events
import Foundation

/// The built-in plugins an agent may be given (the seed's `PluginLoader`), each offered to the
/// model as a tool. Unknown names are refused when the agent is created or changed, so a run never
/// meets a plugin it cannot load.
public enum AgentPlugins {
    /// A plugin as the model sees it: a function name (OpenAI allows only `[A-Za-z0-9_-]`, so
    /// `math.evaluate` is offered as `math_evaluate`), a description and a JSON Schema.
    public struct Tool: Sendable, Equatable {
        public var plugin: String
        public var description: String
        public var parameters: JSONValue
        public var functionName: String { plugin.replacingOccurrences(of: ".", with: "_") }
    }

    public static let tools: [Tool] = [
        Tool(
            plugin: "math.evaluate",
            description: "Evaluate an arithmetic expression (+ - * / % ^, parentheses, sqrt, abs, round, floor, ceil, ln, log10, pi, e) and return the number.",
            parameters: .object([
                "type": .string("object"),
                "properties": .object(["expression": .object(["type": .string("string"), "description": .string("e.g. (2 + 3) * 4")])]),
                "required": .array([.string("expression")]),
            ])),
        Tool(
            plugin: "time.now",
            description: "The current date and time in UTC, ISO 8601.",
            parameters: .object(["type": .string("object"), "properties": .object([:])])),
        Tool(
            plugin: "sandbox.python",
            description: "Run a Python 3 program in an isolated sandbox (no network, a private /workspace, limited time and memory) and return its exit status, stdout and stderr. Print what you need to see.",
            parameters: .object([
                "type": .string("object"),
                "properties": .object([
                    "code": .object(["type": .string("string"), "description": .string("the program, e.g. print(sum(range(10)))")]),
                    "timeout_seconds": .object(["type": .string("integer"), "minimum": .number(1), "maximum": .number(30)]),
                ]),
                "required": .array([.string("code")]),
            ])),
        Tool(
            plugin: "knowledge.search",
            description: "Search a knowledge base your owner owns (hybrid keyword and semantic search) and return its best passages, numbered, each with its document, heading path, offsets and content hash. Cite passages by their numbers.",
            parameters: .object([
                "type": .string("object"),
                "properties": .object([
                    "knowledge_base_id": .object(["type": .string("string"), "description": .string("the knowledge base's id")]),
                    "query": .object(["type": .string("string"), "description": .string("what to look for, in words")]),
                    "top_k": .object(["type": .string("integer"), "minimum": .number(1), "maximum": .number(10)]),
                ]),
                "required": .array([.string("knowledge_base_id"), .string("query")]),
            ])),
    ]

    /// The code and wall time a `sandbox.python` call asks for, or what is wrong with it.
    public static func sandboxArguments(_ arguments: String, maxTimeoutSeconds: Int = 30) -> Result<(code: String, timeoutSeconds: Int?), PluginArgumentError> {
        guard let data = arguments.data(using: .utf8), let object = try? JSONDecoder().decode(JSONValue.self, from: data),
            let code = object["code"]?.stringValue, !code.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
        else { return .failure(PluginArgumentError(message: "arguments must be a JSON object with a non-empty string 'code'")) }
        guard code.utf8.count <= 64 << 10 else { return .failure(PluginArgumentError(message: "code must be at most 65536 bytes")) }
        var timeout: Int?
        if let value = object["timeout_seconds"] {
            guard case .number(let number) = value, number == number.rounded(), (1...Double(maxTimeoutSeconds)).contains(number) else {
                return .failure(PluginArgumentError(message: "timeout_seconds must be an integer from 1 to \(maxTimeoutSeconds)"))
            }
            timeout = Int(number)
        }
        return .success((code, timeout))
    }

    /// A tool call's arguments were unusable; the message goes back to the model.
    public struct PluginArgumentError: Error, Sendable {
        public var message: String
    }

    public static var names: [String] { tools.map(\.plugin) }

    public static func tool(named plugin: String) -> Tool? { tools.first { $0.plugin == plugin } }

    /// The plugin a model's function name refers to, among those the run was given.
    public static func plugin(forFunction name: String, among plugins: [String]) -> String? {
        plugins.first { tool(named: $0)?.functionName == name || $0 == name }
    }

    static func validate(_ plugins: [String]) throws {
        for plugin in plugins where tool(named: plugin) == nil {
            throw DomainError(
                .invalid, code: .agentPluginUnknown,
                "unknown plugin '\(plugin)'; available plugins are \(names.joined(separator: ", "))")
        }
    }

    /// Runs a plugin. A bad argument is an answer for the model (`isError`), not a failure of the run.
    public static func invoke(_ plugin: String, arguments: String, now: Date) -> (result: String, isError: Bool) {
        switch plugin {
        case "math.evaluate":
            guard let data = arguments.data(using: .utf8),
                let object = try? JSONDecoder().decode(JSONValue.self, from: data),
                let expression = object["expression"]?.stringValue
            else { return ("arguments must be a JSON object with a string 'expression'", true) }
            do {
                return (MathExpression.format(try MathExpression.evaluate(expression)), false)
            } catch {
                return ("\(error)", true)
            }
        case "time.now":
            return (Timestamp.format(now), false)
        default:
            return ("unknown tool '\(plugin)'", true)
        }
    }
}
