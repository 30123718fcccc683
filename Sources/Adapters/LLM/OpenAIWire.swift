import Commands
import Events
import Foundation

/// The chat-completions wire format (OpenAI and everything compatible with it), kept apart from
/// the port's types so the port never changes when a provider's JSON does.
enum OpenAIWire {
    struct Request: Encodable {
        var model: String
        var messages: [Message]
        var temperature: Double
        var maxTokens: Int
        var tools: [Tool]?
        var stream: Bool?
        var streamOptions: StreamOptions?

        enum CodingKeys: String, CodingKey {
            case model, messages, temperature, tools, stream
            case maxTokens = "max_tokens"
            case streamOptions = "stream_options"
        }

        init(_ request: ChatRequest, stream: Bool) {
            model = request.model
            messages = request.messages.map(Message.init)
            temperature = request.temperature
            maxTokens = request.maxTokens
            tools = request.tools.isEmpty ? nil : request.tools.map {
                Tool(type: "function", function: .init(name: $0.name, description: $0.description, parameters: $0.parameters))
            }
            self.stream = stream ? true : nil
            streamOptions = stream ? StreamOptions(includeUsage: true) : nil
        }
    }

    struct StreamOptions: Encodable {
        var includeUsage: Bool
        enum CodingKeys: String, CodingKey { case includeUsage = "include_usage" }
    }

    struct Tool: Encodable {
        struct Function: Encodable {
            var name: String
            var description: String
            var parameters: JSONValue
        }
        var type: String
        var function: Function
    }

    struct Message: Codable {
        var role: String
        var content: String?
        var toolCalls: [ToolCall]?
        var toolCallID: String?

        enum CodingKeys: String, CodingKey {
            case role, content
            case toolCalls = "tool_calls"
            case toolCallID = "tool_call_id"
        }

        init(_ message: ChatMessage) {
            role = message.role.rawValue
            content = message.content
            toolCalls = message.toolCalls?.map { ToolCall(id: $0.id, type: "function", function: .init(name: $0.name, arguments: $0.arguments)) }
            toolCallID = message.toolCallID
        }

        var chatMessage: ChatMessage {
            ChatMessage(
                role: ChatMessage.Role(rawValue: role) ?? .assistant, content: content,
                toolCalls: toolCalls.flatMap { $0.isEmpty ? nil : $0.map { Commands.ToolCall(id: $0.id, name: $0.function.name, arguments: $0.function.arguments) } },
                toolCallID: toolCallID)
        }
    }

    struct ToolCall: Codable {
        struct Function: Codable {
            var name: String
            var arguments: String
        }
        var id: String
        var type: String?
        var function: Function
    }

    struct Usage: Decodable {
        var promptTokens: Int
        var completionTokens: Int
        enum CodingKeys: String, CodingKey {
            case promptTokens = "prompt_tokens"
            case completionTokens = "completion_tokens"
        }
    }

    struct Response: Decodable {
        struct Choice: Decodable {
            var message: Message
            var finishReason: String?
            enum CodingKeys: String, CodingKey {
                case message
                case finishReason = "finish_reason"
            }
        }
        var model: String?
        var choices: [Choice]
        var usage: Usage?
    }

    /// One `data:` line of a streamed answer.
    struct Chunk: Decodable {
        struct Choice: Decodable {
            struct Delta: Decodable {
                struct ToolCallDelta: Decodable {
                    struct Function: Decodable {
                        var name: String?
                        var arguments: String?
                    }
                    var index: Int?
                    var id: String?
                    var function: Function?
                }
                var content: String?
                var toolCalls: [ToolCallDelta]?
                enum CodingKeys: String, CodingKey {
                    case content
                    case toolCalls = "tool_calls"
                }
            }
            var delta: Delta?
            var finishReason: String?
            enum CodingKeys: String, CodingKey {
                case delta
                case finishReason = "finish_reason"
            }
        }
        var model: String?
        var choices: [Choice]?
        var usage: Usage?
    }

    /// `{"error": {"message": ...}}`, as OpenAI and most compatible servers answer errors.
    struct ErrorBody: Decodable {
        struct Detail: Decodable { var message: String? }
        var error: Detail?
    }
}
