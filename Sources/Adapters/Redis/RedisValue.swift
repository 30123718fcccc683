/// A reply from Redis.
public enum RedisValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case string(String)
    case status(String)
    case array([RedisValue])

    public var string: String? {
        switch self {
        case .string(let text), .status(let text): text
        case .integer(let value): String(value)
        default: nil
        }
    }

    public var integer: Int64? {
        switch self {
        case .integer(let value): value
        case .string(let text): Int64(text)
        default: nil
        }
    }

    public var array: [RedisValue]? {
        if case .array(let values) = self { return values }
        return nil
    }
}

/// What went wrong talking to Redis. `connection` means the connection is gone (it is discarded
/// and the next call reconnects); `server` is an error reply to a command that was delivered.
public struct RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable { case connection, server, noScript }
    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "redis \(code.rawValue): \(message)" }
}
