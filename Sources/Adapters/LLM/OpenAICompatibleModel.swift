import AsyncHTTPClient
import Commands
import Events
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// A `LanguageModel` over the chat-completions API of OpenAI and compatible servers (vLLM,
/// Ollama, LM Studio, ...), and over Azure OpenAI through its deployment and api-version. One try
/// per call: retries, timeouts and the circuit breaker are `ResilientLanguageModel`'s.
public struct OpenAICompatibleModel: LanguageModel {
    public struct Settings: Sendable, Equatable {
        public enum Flavor: Sendable, Equatable {
            /// `{baseURL}/chat/completions`, `Authorization: Bearer`.
            case openAI
            /// `{baseURL}/openai/deployments/{deployment}/chat/completions?api-version=`, `api-key`.
            case azure(deployment: String, apiVersion: String)
        }

        public var baseURL: String
        public var apiKey: String?
        public var flavor: Flavor
        /// Bounds a single HTTP exchange (the resilience layer has its own timeout too).
        public var requestTimeout: Duration
        public var maxResponseBytes: Int

        public init(baseURL: String, apiKey: String?, flavor: Flavor = .openAI, requestTimeout: Duration = .seconds(30), maxResponseBytes: Int = 4 << 20) {
            self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
            self.apiKey = apiKey
            self.flavor = flavor
            self.requestTimeout = requestTimeout
            self.maxResponseBytes = maxResponseBytes
        }

        var url: String {
            switch flavor {
            case .openAI:
                return "\(baseURL)/chat/completions"
            case .azure(let deployment, let apiVersion):
                let name = deployment.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? deployment
                let version = apiVersion.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? apiVersion
                return "\(baseURL)/openai/deployments/\(name)/chat/completions?api-version=\(version)"
            }
        }
    }

    let settings: Settings
    let client: HTTPClient
    let logger: Logger

    /// The process's client for model calls. Unlike `HTTPClient.shared`, it does not retry a
    /// refused connection until the deadline: `ResilientLanguageModel` owns retries, so an
    /// unreachable model fails each try at once and the run's error says why.
    public static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout = .init(connect: .seconds(10))
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    public init(settings: Settings, client: HTTPClient = OpenAICompatibleModel.client, logger: Logger) {
        self.settings = settings
        self.client = client
        self.logger = logger
    }

    func httpRequest(_ request: ChatRequest, stream: Bool) throws -> HTTPClientRequest {
        var http = HTTPClientRequest(url: settings.url)
        http.method = .POST
        http.headers.add(name: "Content-Type", value: "application/json")
        http.headers.add(name: "Accept", value: stream ? "text/event-stream" : "application/json")
        if let key = settings.apiKey, !key.isEmpty {
            switch settings.flavor {
            case .openAI: http.headers.add(name: "Authorization", value: "Bearer \(key)")
            case .azure: http.headers.add(name: "api-key", value: key)
            }
        }
        http.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(OpenAIWire.Request(request, stream: stream))))
        return http
    }

    var timeout: TimeAmount {
        .milliseconds(Int64(settings.requestTimeout.components.seconds * 1000 + settings.requestTimeout.components.attoseconds / 1_000_000_000_000_000))
    }

    public func complete(_ request: ChatRequest) async throws -> ChatResponse {
        let response = try await send(try httpRequest(request, stream: false))
        let body = try await collect(response)
        try Self.check(response, body: body)
        let decoded: OpenAIWire.Response
        do {
            decoded = try JSONDecoder().decode(OpenAIWire.Response.self, from: body)
        } catch {
            throw LanguageModelError.malformedResponse("not a chat completion (\(Self.describe(error)))")
        }
        guard let choice = decoded.choices.first else { throw LanguageModelError.malformedResponse("no choices") }
        return ChatResponse(
            model: decoded.model ?? request.model, message: choice.message.chatMessage, finishReason: choice.finishReason,
            usage: TokenUsage(promptTokens: decoded.usage?.promptTokens ?? 0, completionTokens: decoded.usage?.completionTokens ?? 0))
    }

    public func stream(_ request: ChatRequest) -> AsyncThrowingStream<ChatStreamEvent, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    let response = try await send(try httpRequest(request, stream: true))
                    guard response.status == .ok else {
                        try Self.check(response, body: try await collect(response))
                        throw LanguageModelError.malformedResponse("unexpected status \(response.status.code)")
                    }
                    var accumulator = StreamAccumulator(model: request.model)
                    var lines = SSELineSplitter()
                    streaming: for try await buffer in response.body {
                        for line in lines.feed(Array(buffer.readableBytesView)) {
                            guard line.hasPrefix("data:") else { continue }
                            let payload = line.dropFirst(5).trimmingCharacters(in: .whitespaces)
                            if payload == "[DONE]" { break streaming }
                            let chunk: OpenAIWire.Chunk
                            do {
                                chunk = try JSONDecoder().decode(OpenAIWire.Chunk.self, from: Data(payload.utf8))
                            } catch {
                                throw LanguageModelError.malformedResponse("bad stream chunk (\(Self.describe(error)))")
                            }
                            if let text = accumulator.add(chunk) { continuation.yield(.delta(text)) }
                        }
                    }
                    continuation.yield(.finished(accumulator.response))
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: Self.mapped(error))
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    func send(_ request: HTTPClientRequest) async throws -> HTTPClientResponse {
        do {
            return try await client.execute(request, timeout: timeout, logger: logger)
        } catch {
            throw Self.mapped(error)
        }
    }

    func collect(_ response: HTTPClientResponse) async throws -> Data {
        do {
            return Data(buffer: try await response.body.collect(upTo: settings.maxResponseBytes))
        } catch {
            throw Self.mapped(error)
        }
    }

    static func mapped(_ error: any Error) -> any Error {
        switch error {
        case is LanguageModelError, is CancellationError: return error
        case let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout:
            return LanguageModelError.timedOut(seconds: 30)
        case let error as NIOTooManyBytesError:
            return LanguageModelError.malformedResponse("answer larger than \(error.maxBytes.map(String.init) ?? "the limit") bytes")
        default:
            return LanguageModelError.unreachable(describe(error))
        }
    }

    static func describe(_ error: any Error) -> String {
        String(describing: error).prefix(200).description
    }

    /// 2xx passes; 429, 5xx and other 4xx become the port's errors, with the server's message.
    static func check(_ response: HTTPClientResponse, body: Data) throws {
        let status = Int(response.status.code)
        guard !(200..<300).contains(status) else { return }
        let message = ((try? JSONDecoder().decode(OpenAIWire.ErrorBody.self, from: body))?.error?.message
            ?? String(decoding: body.prefix(300), as: UTF8.self)).trimmingCharacters(in: .whitespacesAndNewlines)
        switch status {
        case 429:
            throw LanguageModelError.rateLimited(retryAfter: response.headers.first(name: "Retry-After").flatMap(Double.init))
        case 408:
            throw LanguageModelError.timedOut(seconds: 0)
        case 500...:
            throw LanguageModelError.server(status: status, message: String(message.prefix(300)))
        default:
            throw LanguageModelError.rejected(status: status, message: String(message.prefix(300)))
        }
    }
}

/// Builds the whole answer from streamed chunks: text, tool calls assembled by index, usage.
struct StreamAccumulator {
    var model: String
    var content = ""
    var toolCalls: [Int: (id: String, name: String, arguments: String)] = [:]
    var finishReason: String?
    var usage = TokenUsage()

    /// Returns the text this chunk adds, if any.
    mutating func add(_ chunk: OpenAIWire.Chunk) -> String? {
        if let model = chunk.model { self.model = model }
        if let usage = chunk.usage { self.usage = TokenUsage(promptTokens: usage.promptTokens, completionTokens: usage.completionTokens) }
        var text: String?
        for choice in chunk.choices ?? [] {
            if let reason = choice.finishReason { finishReason = reason }
            if let piece = choice.delta?.content, !piece.isEmpty {
                content += piece
                text = (text ?? "") + piece
            }
            for call in choice.delta?.toolCalls ?? [] {
                let index = call.index ?? 0
                var current = toolCalls[index] ?? ("", "", "")
                if let id = call.id { current.id = id }
                if let name = call.function?.name { current.name += name }
                if let arguments = call.function?.arguments { current.arguments += arguments }
                toolCalls[index] = current
            }
        }
        return text
    }

    var response: ChatResponse {
        let calls = toolCalls.sorted { $0.key < $1.key }.map { ToolCall(id: $0.value.id, name: $0.value.name, arguments: $0.value.arguments) }
        return ChatResponse(
            model: model,
            message: ChatMessage(role: .assistant, content: content.isEmpty && !calls.isEmpty ? nil : content, toolCalls: calls.isEmpty ? nil : calls),
            finishReason: finishReason, usage: usage)
    }
}

/// Splits a byte stream into lines (LF or CRLF), keeping a partial line for the next buffer.
struct SSELineSplitter {
    var pending: [UInt8] = []

    mutating func feed(_ bytes: [UInt8]) -> [String] {
        pending += bytes
        var lines: [String] = []
        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
            var line = pending[..<newline]
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            lines.append(String(decoding: line, as: UTF8.self))
            pending.removeSubrange(...newline)
        }
        return lines
    }
}
