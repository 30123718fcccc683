import Events
import Foundation

/// One message of a chat with a model, in the OpenAI shape.
public struct ChatMessage: Codable, Sendable, Equatable {
    public enum Role: String, Codable, Sendable { case system, user, assistant, tool }

    public var role: Role
    public var content: String?
    public var toolCalls: [ToolCall]?
    /// For `tool` messages: the call this answers.
    public var toolCallID: String?

    public init(role: Role, content: String?, toolCalls: [ToolCall]? = nil, toolCallID: String? = nil) {
        self.role = role
        self.content = content
        self.toolCalls = toolCalls
        self.toolCallID = toolCallID
    }

    enum CodingKeys: String, CodingKey {
        case role, content, toolCalls
        case toolCallID = "toolCallId"
    }
}

/// The model asking for a function to be run.
public struct ToolCall: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    /// JSON text, as the model wrote it.
    public var arguments: String

    public init(id: String, name: String, arguments: String) {
        self.id = id
        self.name = name
        self.arguments = arguments
    }
}

/// A function offered to the model.
public struct ToolSpec: Codable, Sendable, Equatable {
    public var name: String
    public var description: String
    public var parameters: JSONValue

    public init(name: String, description: String, parameters: JSONValue) {
        self.name = name
        self.description = description
        self.parameters = parameters
    }
}

public struct ChatRequest: Codable, Sendable, Equatable {
    public var model: String
    public var messages: [ChatMessage]
    public var temperature: Double
    public var maxTokens: Int
    public var tools: [ToolSpec]

    public init(model: String, messages: [ChatMessage], temperature: Double, maxTokens: Int, tools: [ToolSpec] = []) {
        self.model = model
        self.messages = messages
        self.temperature = temperature
        self.maxTokens = maxTokens
        self.tools = tools
    }
}

public struct ChatResponse: Codable, Sendable, Equatable {
    /// The model that answered, as it names itself.
    public var model: String
    public var message: ChatMessage
    public var finishReason: String?
    public var usage: TokenUsage

    public init(model: String, message: ChatMessage, finishReason: String?, usage: TokenUsage) {
        self.model = model
        self.message = message
        self.finishReason = finishReason
        self.usage = usage
    }
}

/// A piece of a streamed answer: text as it arrives, then the whole response at the end.
public enum ChatStreamEvent: Sendable, Equatable {
    case delta(String)
    case finished(ChatResponse)
}

/// Why a model call failed. `isRetryable` decides whether the resilience layer tries again.
public enum LanguageModelError: Error, Sendable, Equatable, CustomStringConvertible {
    /// 429; `retryAfter` seconds if the server said.
    case rateLimited(retryAfter: Double?)
    /// 5xx.
    case server(status: Int, message: String)
    /// 4xx other than 429: the request itself is wrong; trying again cannot help.
    case rejected(status: Int, message: String)
    case timedOut(seconds: Double)
    /// The connection failed.
    case unreachable(String)
    case malformedResponse(String)
    /// The circuit breaker is open: calls fail fast until it half-opens.
    case circuitOpen(retryInSeconds: Double)

    public var isRetryable: Bool {
        switch self {
        case .rateLimited, .server, .timedOut, .unreachable: true
        case .rejected, .malformedResponse, .circuitOpen: false
        }
    }

    /// Whether asking again later may succeed (what a failed run reports as `retryable`): a
    /// transient fault, or an open circuit that will half-open.
    public var mayRecover: Bool {
        if case .circuitOpen = self { return true }
        return isRetryable
    }

    /// Whether the outcome counts against the model's health (a refused request does not).
    public var countsAsFailure: Bool {
        switch self {
        case .rejected, .circuitOpen: false
        default: true
        }
    }

    public var description: String {
        switch self {
        case .rateLimited(let after): "the model is rate limited" + (after.map { " (retry after \(Int($0)) s)" } ?? "")
        case .server(let status, let message): "the model answered \(status)" + (message.isEmpty ? "" : ": \(message)")
        case .rejected(let status, let message): "the model refused the request (\(status))" + (message.isEmpty ? "" : ": \(message)")
        case .timedOut(let seconds): "the model did not answer within \(Self.seconds(seconds)) s"
        case .unreachable(let reason): "the model could not be reached: \(reason)"
        case .malformedResponse(let reason): "the model's answer could not be read: \(reason)"
        case .circuitOpen(let retry): "the model is unavailable (circuit open; next try in \(Int(retry.rounded(.up))) s)"
        }
    }

    static func seconds(_ value: Double) -> String {
        value.rounded() == value ? String(Int(value)) : String(format: "%.1f", value)
    }
}

/// A chat-completion model: an OpenAI-compatible service in Adapters, or the offline model.
public protocol LanguageModel: Sendable {
    func complete(_ request: ChatRequest) async throws -> ChatResponse
    func stream(_ request: ChatRequest) -> AsyncThrowingStream<ChatStreamEvent, any Error>
}

extension LanguageModel {
    /// A model that cannot stream answers with one delta and the whole response.
    public func stream(_ request: ChatRequest) -> AsyncThrowingStream<ChatStreamEvent, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    let response = try await complete(request)
                    if let content = response.message.content { continuation.yield(.delta(content)) }
                    continuation.yield(.finished(response))
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}
