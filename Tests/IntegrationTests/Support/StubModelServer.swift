import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Synchronization

/// A local OpenAI-compatible chat-completions server for the tests. What it does depends on the
/// requested model:
/// - `stub-echo`: answers `stub: <last user message>` (usage 11 + 7 tokens);
/// - `stub-tool`: first asks for `math_evaluate` with `6*7`, then answers with the tool's result;
/// - `stub-500`: always 500; `stub-429-once`: 429 (`Retry-After: 0`), then like `stub-echo`;
/// - `stub-slow`: waits `slowSeconds`, then like `stub-echo`;
/// - `stub-judge`: as a judge (system message "You evaluate ..."), scores 8 on every criterion,
///   2 when the response holds `REGRESS` and the user's message `hard`, and answers no JSON at all
///   when the response holds `MALFORMED`; otherwise it answers `persona says: <system message>`.
/// Streaming (`"stream": true`) answers in Server-Sent Events chunks. Every request is recorded.
final class StubModelServer: Sendable {
    struct Seen: Sendable {
        var path: String
        var query: String?
        var authorization: String?
        var apiKey: String?
        var model: String
        var body: [String: Any] { (try? JSONSerialization.jsonObject(with: raw) as? [String: Any]) ?? [:] }
        var raw: Data
    }

    let seen = Mutex<[Seen]>([])
    let slowSeconds: Double

    init(slowSeconds: Double = 3) {
        self.slowSeconds = slowSeconds
    }

    func requests(model: String? = nil) -> [Seen] {
        seen.withLock { all in all.filter { model == nil || $0.model == model } }
    }

    /// Runs `body` with the server listening on loopback; its argument is the base URL (`.../v1`).
    func run(_ body: @escaping @Sendable (String) async throws -> Void) async throws {
        let router = Router()
        router.post("v1/chat/completions") { request, context in try await self.answer(request, context: context) }
        router.post("openai/deployments/:deployment/chat/completions") { request, context in try await self.answer(request, context: context) }
        router.post("v1/embeddings") { request, context in try await self.embed(request, context: context) }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: Logger(label: "stub"))
        try await app.test(.live) { client in
            try await body("http://127.0.0.1:\(client.port!)/v1")
        }
    }

    /// `/embeddings`: a vector of 16 letter counts per text (texts sharing words lie close), after
    /// `slowSeconds / 10` per call for `stub-embed-slow`; `stub-embed-500` always fails.
    func embed(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let data = Data(buffer: try await request.body.collect(upTo: 16 << 20))
        let json = (try JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
        let model = json["model"] as? String ?? ""
        seen.withLock { $0.append(Seen(path: request.uri.path, query: nil, authorization: request.headers[.authorization], apiKey: nil, model: model, raw: data)) }
        if model == "stub-embed-500" { return Self.json(["error": ["message": "stub failure"]], status: .internalServerError) }
        if model == "stub-embed-slow" { try await Task.sleep(for: .milliseconds(Int(slowSeconds * 100))) }
        let texts = json["input"] as? [String] ?? []
        let items: [[String: Any]] = texts.enumerated().map { index, text in
            var vector = [Double](repeating: 0, count: 16)
            for scalar in text.lowercased().unicodeScalars where scalar.properties.isAlphabetic { vector[Int(scalar.value) % 16] += 1 }
            return ["object": "embedding", "index": index, "embedding": vector]
        }
        return Self.json(["object": "list", "model": model, "data": items, "usage": ["prompt_tokens": texts.count, "total_tokens": texts.count]], status: .ok)
    }

    func answer(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let data = Data(buffer: try await request.body.collect(upTo: 1 << 20))
        let json = (try JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
        let model = json["model"] as? String ?? ""
        let path = request.uri.path
        let count = seen.withLock { all in
            all.append(Seen(
                path: path, query: request.uri.query, authorization: request.headers[.authorization],
                apiKey: request.headers[HTTPField.Name("api-key")!], model: model, raw: data))
            return all.filter { $0.model == model }.count
        }
        let messages = json["messages"] as? [[String: Any]] ?? []
        let stream = json["stream"] as? Bool ?? false
        switch model {
        case "stub-500":
            return Self.json(["error": ["message": "stub failure"]], status: .internalServerError)
        case "stub-429-once" where count == 1:
            return Self.json(["error": ["message": "slow down"]], status: .tooManyRequests, headers: [.retryAfter: "0"])
        case "stub-slow":
            try await Task.sleep(for: .milliseconds(Int(slowSeconds * 1000)))
        case "stub-judge":
            let system = messages.first?["content"] as? String ?? ""
            let task = messages.count > 1 ? messages[1]["content"] as? String ?? "" : ""
            guard system.hasPrefix("You evaluate") else {
                return Self.completion(model: model, message: ["role": "assistant", "content": "persona says: \(system)"], finish: "stop")
            }
            if task.contains("MALFORMED") { return Self.completion(model: model, message: ["role": "assistant", "content": "I would say 7 out of 10."], finish: "stop") }
            let score = task.contains("REGRESS") && task.contains("The user's message was: hard") ? 2 : 8
            let verdict = "{\"tone\": \(score), \"role_adherence\": \(score), \"trait_alignment\": \(score), \"reasoning\": \"stub judge\"}"
            return Self.completion(model: model, message: ["role": "assistant", "content": verdict], finish: "stop")
        case "stub-sql-all":
            // A model that ignores whose data it is asked about: every row of every owner.
            return Self.completion(
                model: model, message: ["role": "assistant", "content": "```sql\nSELECT owner_id, count(*) AS runs FROM agent_runs GROUP BY owner_id ORDER BY owner_id\n```"],
                finish: "stop")
        case "stub-sql-escape":
            // A model turned against its user: another schema, then a stacked write.
            return Self.completion(
                model: model, message: ["role": "assistant", "content": "SELECT * FROM public.agent_run_analytics; DELETE FROM events"], finish: "stop")
        case "stub-tool":
            if messages.last?["role"] as? String != "tool" {
                let call: [String: Any] = ["id": "call_1", "type": "function", "function": ["name": "math_evaluate", "arguments": "{\"expression\":\"6*7\"}"]]
                if stream { return Self.sse(model: model, content: nil, toolCall: call) }
                return Self.completion(model: model, message: ["role": "assistant", "content": NSNull(), "tool_calls": [call]], finish: "tool_calls")
            }
            let result = messages.last?["content"] as? String ?? "?"
            return Self.completion(model: model, message: ["role": "assistant", "content": "The answer is \(result)."], finish: "stop")
        default:
            break
        }
        let last = messages.last { $0["role"] as? String == "user" }?["content"] as? String ?? ""
        if stream { return Self.sse(model: model, content: "stub: \(last)", toolCall: nil) }
        return Self.completion(model: model, message: ["role": "assistant", "content": "stub: \(last)"], finish: "stop")
    }

    static func completion(model: String, message: [String: Any], finish: String) -> Response {
        json([
            "id": "chatcmpl-stub", "object": "chat.completion", "model": model,
            "choices": [["index": 0, "message": message, "finish_reason": finish]],
            "usage": ["prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18],
        ], status: .ok)
    }

    static func sse(model: String, content: String?, toolCall: [String: Any]?) -> Response {
        var chunks: [[String: Any]] = []
        if let content {
            for word in content.split(separator: " ", omittingEmptySubsequences: false).enumerated().map({ ($0.offset == 0 ? "" : " ") + $0.element }) {
                chunks.append(["model": model, "choices": [["index": 0, "delta": ["content": word]]]])
            }
        }
        if let toolCall, let function = toolCall["function"] as? [String: Any], let arguments = function["arguments"] as? String {
            // Split the arguments over two chunks, as real servers do.
            let half = arguments.index(arguments.startIndex, offsetBy: arguments.count / 2)
            chunks.append(["model": model, "choices": [["index": 0, "delta": ["tool_calls": [[
                "index": 0, "id": toolCall["id"]!, "type": "function", "function": ["name": function["name"]!, "arguments": String(arguments[..<half])],
            ]]]]]])
            chunks.append(["model": model, "choices": [["index": 0, "delta": ["tool_calls": [["index": 0, "function": ["arguments": String(arguments[half...])]]]]]]])
        }
        chunks.append(["model": model, "choices": [["index": 0, "delta": [:], "finish_reason": toolCall == nil ? "stop" : "tool_calls"]]])
        chunks.append(["model": model, "choices": [], "usage": ["prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18]])
        var text = ""
        for chunk in chunks {
            let data = try! JSONSerialization.data(withJSONObject: chunk)
            text += "data: \(String(decoding: data, as: UTF8.self))\r\n\r\n"
        }
        text += "data: [DONE]\n\n"
        return Response(status: .ok, headers: [.contentType: "text/event-stream"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func json(_ object: [String: Any], status: HTTPResponse.Status, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try! JSONSerialization.data(withJSONObject: object))))
    }
}
