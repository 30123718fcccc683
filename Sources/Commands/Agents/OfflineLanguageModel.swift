import Events
import Foundation

/// The model used when none is configured: deterministic, free, and honest about what it is.
/// Every answer starts with `[offline model]` and the recorded model name is `offline`, so
/// nobody mistakes its output for a real model's. It does use tools: given `math.evaluate` and an
/// input holding arithmetic, it asks for the tool and then reports its result, so the whole tool
/// loop works without a network. Given `sandbox.python` and an input holding a fenced Python block
/// (```python ... ```), it asks the sandbox to run that block. Given `knowledge.search` and an
/// input naming a knowledge base's id, it searches that base for the rest of the input.
public struct OfflineLanguageModel: LanguageModel {
    public static let modelName = "offline"

    public init() {}

    public func complete(_ request: ChatRequest) async throws -> ChatResponse {
        let prompt = Self.tokens(in: request.messages.compactMap(\.content).joined(separator: " "))
        let message = answer(request)
        var completion = Self.tokens(in: message.content ?? "")
        completion += (message.toolCalls ?? []).reduce(0) { $0 + Self.tokens(in: $1.name + $1.arguments) }
        completion = min(completion, request.maxTokens)
        return ChatResponse(
            model: Self.modelName, message: message, finishReason: message.toolCalls == nil ? "stop" : "tool_calls",
            usage: TokenUsage(promptTokens: prompt, completionTokens: completion))
    }

    func answer(_ request: ChatRequest) -> ChatMessage {
        if let last = request.messages.last, last.role == .tool {
            let results = request.messages.reversed().prefix { $0.role == .tool }.reversed().compactMap(\.content)
            return ChatMessage(role: .assistant, content: "[offline model] The tool returned: \(results.joined(separator: "; ")).")
        }
        let input = request.messages.last { $0.role == .user }?.content ?? ""
        let sandbox = AgentPlugins.tool(named: "sandbox.python")!.functionName
        if request.tools.contains(where: { $0.name == sandbox }), let code = Self.pythonBlock(in: input) {
            let arguments = String(decoding: (try? JSONEncoder().encode(["code": code])) ?? Data(), as: UTF8.self)
            return ChatMessage(role: .assistant, content: nil, toolCalls: [ToolCall(id: "offline-call-1", name: sandbox, arguments: arguments)])
        }
        let knowledge = AgentPlugins.tool(named: "knowledge.search")!.functionName
        if request.tools.contains(where: { $0.name == knowledge }), let (base, query) = Self.knowledgeQuery(in: input) {
            let arguments = String(decoding: (try? JSONEncoder().encode(["knowledge_base_id": base, "query": query])) ?? Data(), as: UTF8.self)
            return ChatMessage(role: .assistant, content: nil, toolCalls: [ToolCall(id: "offline-call-1", name: knowledge, arguments: arguments)])
        }
        let math = AgentPlugins.tool(named: "math.evaluate")!.functionName
        if request.tools.contains(where: { $0.name == math }), let expression = Self.arithmetic(in: input) {
            let arguments = String(decoding: (try? JSONEncoder().encode(["expression": expression])) ?? Data(), as: UTF8.self)
            return ChatMessage(role: .assistant, content: nil, toolCalls: [ToolCall(id: "offline-call-1", name: math, arguments: arguments)])
        }
        let words = input.split(whereSeparator: \.isWhitespace)
        let echo = words.prefix(40).joined(separator: " ") + (words.count > 40 ? " …" : "")
        return ChatMessage(
            role: .assistant,
            content: "[offline model] No language model is configured, so this is a deterministic reply. You said (\(words.count) words): \(echo)")
    }

    /// A knowledge base's id named in the input, and the rest of the input as the query.
    static func knowledgeQuery(in text: String) -> (base: String, query: String)? {
        guard let range = text.range(of: "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", options: .regularExpression)
        else { return nil }
        let query = (text[..<range.lowerBound] + " " + text[range.upperBound...]).trimmingCharacters(in: .whitespacesAndNewlines)
        return query.isEmpty ? nil : (String(text[range]).lowercased(), query)
    }

    /// The first fenced ```python block's code.
    static func pythonBlock(in text: String) -> String? {
        guard let open = text.range(of: "```python\n") ?? text.range(of: "```py\n"),
            let close = text.range(of: "```", range: open.upperBound..<text.endIndex)
        else { return nil }
        let code = String(text[open.upperBound..<close.lowerBound])
        return code.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? nil : code
    }

    /// The longest run of digits, operators, parentheses and spaces holding an operator.
    static func arithmetic(in text: String) -> String? {
        let allowed = Set("0123456789.+-*/%^() ")
        var best = ""
        var current = ""
        for character in text + "\n" {
            if allowed.contains(character) {
                current.append(character)
            } else {
                let candidate = current.trimmingCharacters(in: .whitespaces)
                if candidate.count > best.count, candidate.contains(where: { "+-*/%^".contains($0) }),
                    candidate.contains(where: \.isNumber), (try? MathExpression.evaluate(candidate)) != nil
                {
                    best = candidate
                }
                current = ""
            }
        }
        return best.isEmpty ? nil : best
    }

    /// About four characters a token, as OpenAI's tokenizers average on English.
    static func tokens(in text: String) -> Int {
        text.isEmpty ? 0 : max(1, (text.count + 3) / 4)
    }
}
