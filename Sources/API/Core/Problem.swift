import Commands
import Events
import Foundation
import Hummingbird

/// An RFC 9457 problem document. Every error the API answers with is one of these, served as
/// `application/problem+json`; `detail` is written for the caller and never carries internals.
public struct Problem: HTTPResponseError, Codable, Sendable, Equatable {
    public var status: HTTPResponse.Status
    /// Machine-readable and stable, e.g. `agent.deleted` or `request.malformed`.
    public var code: String
    public var detail: String?
    public var instance: String?
    /// Extra response headers, e.g. `Retry-After`. Not part of the document.
    public var headers: HTTPFields = [:]
    /// Extension members of the document (RFC 9457 §3.2), e.g. `errors`: each failing field by
    /// JSON pointer.
    public var extensions: [String: JSONValue] = [:]

    public init(_ status: HTTPResponse.Status, code: String, detail: String? = nil, headers: HTTPFields = [:], extensions: [String: JSONValue] = [:]) {
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers
        self.extensions = extensions
    }

    /// `errors`: one `{pointer, detail}` per failing field.
    public static func errors(_ violations: [JSONSchema.Violation]) -> [String: JSONValue] {
        violations.isEmpty ? [:] : ["errors": .array(violations.map { .object(["pointer": .string($0.pointer), "detail": .string($0.message)]) })]
    }

    struct ExtensionKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// A documented URI per kind of problem, relative to the API.
    public var type: String { "/problems/\(code)" }
    public var title: String { status.reasonPhrase }

    enum CodingKeys: String, CodingKey { case type, title, status, detail, code, instance }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        status = HTTPResponse.Status(code: try container.decode(Int.self, forKey: .status))
        code = try container.decode(String.self, forKey: .code)
        detail = try container.decodeIfPresent(String.self, forKey: .detail)
        instance = try container.decodeIfPresent(String.self, forKey: .instance)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(type, forKey: .type)
        try container.encode(title, forKey: .title)
        try container.encode(status.code, forKey: .status)
        try container.encode(code, forKey: .code)
        try container.encodeIfPresent(detail, forKey: .detail)
        try container.encodeIfPresent(instance, forKey: .instance)
        var extra = encoder.container(keyedBy: ExtensionKey.self)
        for (key, value) in extensions where CodingKeys(rawValue: key) == nil {
            try extra.encode(value, forKey: ExtensionKey(stringValue: key))
        }
    }

    public static func == (lhs: Problem, rhs: Problem) -> Bool {
        lhs.status == rhs.status && lhs.code == rhs.code && lhs.detail == rhs.detail && lhs.instance == rhs.instance && lhs.extensions == rhs.extensions
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var document = self
        document.instance = instance ?? request.uri.path
        var fields = headers
        fields[.contentType] = "application/problem+json"
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return Response(
            status: status, headers: fields,
            body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(document))))
    }
}
