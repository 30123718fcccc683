import Foundation
import Hummingbird
import NIOCore

/// Decodes every JSON request body within limits that cost nothing to check: the size before a
/// byte is read (`Content-Length`) and while reading, then the nesting depth in one linear scan,
/// and only then `JSONDecoder`, whose cost grows faster than linearly with depth. Every refusal is
/// a problem in the API's words: JSON names and field paths, never Swift types.
public struct BoundedJSONDecoder: RequestDecoder {
    /// Far deeper than any of our documents (parameters are free-form, but 32 levels is a lot of
    /// structure); a body nested deeper is refused in microseconds.
    public static let maxDepth = 32

    public init() {}

    public func decode<T: Decodable>(_ type: T.Type, from request: Request, context: some RequestContext) async throws -> T {
        let body = try await Self.collect(request, limit: context.maxUploadSize)
        try Self.checkDepth(body, max: Self.maxDepth)
        do {
            return try JSONDecoder().decode(T.self, from: body)
        } catch let error as DecodingError {
            throw Problem(.badRequest, code: "request.malformed", detail: Self.describe(error))
        }
    }

    /// The body, refused with 413 as soon as it is known to be larger than `limit`.
    public static func collect(_ request: Request, limit: Int) async throws -> ByteBuffer {
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > limit {
            throw tooLarge(limit)
        }
        do {
            return try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw tooLarge(limit)
        }
    }

    static func tooLarge(_ limit: Int) -> Problem {
        Problem(.contentTooLarge, code: "request.too_large", detail: "the request body is larger than \(limit) bytes")
    }

    /// Refuses JSON nested deeper than `max` arrays and objects. Counts brackets outside strings;
    /// whether the text is otherwise valid JSON is for the decoder to say.
    public static func checkDepth(_ body: ByteBuffer, max: Int) throws {
        let tooDeep = body.withUnsafeReadableBytes { bytes -> Bool in
            var depth = 0
            var inString = false
            var escaped = false
            for byte in bytes {
                if inString {
                    if escaped {
                        escaped = false
                    } else if byte == UInt8(ascii: "\\") {
                        escaped = true
                    } else if byte == UInt8(ascii: "\"") {
                        inString = false
                    }
                    continue
                }
                switch byte {
                case UInt8(ascii: "\""): inString = true
                case UInt8(ascii: "["), UInt8(ascii: "{"):
                    depth += 1
                    if depth > max { return true }
                case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
                default: break
                }
            }
            return false
        }
        if tooDeep {
            throw Problem(.badRequest, code: "request.too_deep", detail: "the request body nests arrays and objects deeper than \(max) levels")
        }
    }

    /// What was wrong, by JSON path and JSON type.
    static func describe(_ error: DecodingError) -> String {
        switch error {
        case .typeMismatch(let type, let context):
            return "\(location(context.codingPath)) must be \(jsonType(type))"
        case .valueNotFound(let type, let context):
            return "\(location(context.codingPath)) must be \(jsonType(type)), not null"
        case .keyNotFound(let key, let context):
            return "\(location(context.codingPath + [key])) is required"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "the request body is not valid JSON" : "\(location(context.codingPath)) has an invalid value"
        @unknown default:
            return "the request body is not valid JSON of the expected shape"
        }
    }

    static func location(_ path: [any CodingKey]) -> String {
        guard !path.isEmpty else { return "the request body" }
        var text = ""
        for key in path {
            if let index = key.intValue, key.stringValue == "Index \(index)" || key.stringValue == String(index) {
                text += "[\(index)]"
            } else {
                text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return "`\(text)`"
    }

    static func jsonType(_ type: Any.Type) -> String {
        let name = String(describing: type)
        if name.hasPrefix("Dictionary") || name.hasPrefix("KeyedDecodingContainer") { return "an object" }
        if name.hasPrefix("Array") || name.hasPrefix("UnkeyedDecodingContainer") || name.hasPrefix("Set") { return "an array" }
        if name == "String" || name == "UUID" || name == "Date" || name == "URL" { return "a string" }
        if name == "Bool" { return "a boolean" }
        if ["Int", "Int8", "Int16", "Int32", "Int64", "UInt", "UInt8", "UInt16", "UInt32", "UInt64", "Double", "Float", "Decimal"].contains(name) {
            return "a number"
        }
        return "a value of the documented type"
    }
}
