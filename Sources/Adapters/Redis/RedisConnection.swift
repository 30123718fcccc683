import CHiredis
import Foundation

/// One hiredis connection. Not thread-safe and blocking: only `RedisClient` uses it, one caller at
/// a time, on the blocking-I/O pool.
final class RedisConnection: @unchecked Sendable {
    private let context: UnsafeMutablePointer<redisContext>

    init(_ settings: RedisSettings, timeout: Duration) throws {
        let tv = Self.timeval(timeout)
        guard let context = redisConnectWithTimeout(settings.host, Int32(settings.port), tv) else {
            throw RedisError(.connection, "could not allocate a context")
        }
        // From here on deinit frees the context, also when this initializer throws: a throwing
        // class initializer runs deinit once every stored property is set. Never free it here.
        self.context = context
        if context.pointee.err != 0 {
            throw RedisError(.connection, "connect to \(settings.host):\(settings.port) failed: \(errorText)")
        }
        redisSetTimeout(context, tv)
        if let password = settings.password { _ = try command(["AUTH", password]) }
        if settings.database != 0 { _ = try command(["SELECT", String(settings.database)]) }
    }

    deinit { redisFree(context) }

    /// False once hiredis has seen an I/O or protocol error: the connection must not be reused.
    var isUsable: Bool { context.pointee.err == 0 }

    func command(_ args: [String]) throws -> RedisValue {
        try pipeline([args])[0]
    }

    /// Sends every command, then reads every reply: one round trip for the lot. An error reply
    /// to one command does not stop the others; the first is thrown after all are read.
    func pipeline(_ commands: [[String]]) throws -> [RedisValue] {
        for args in commands {
            let status = Self.withArgv(args) { argc, argv, lengths in
                redisAppendCommandArgv(context, argc, argv, lengths)
            }
            guard status == REDIS_OK else { throw RedisError(.connection, "send failed: \(errorText)") }
        }
        var replies: [RedisValue] = []
        var firstError: RedisError?
        for _ in commands {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
                throw RedisError(.connection, "read failed: \(errorText)")
            }
            defer { freeReplyObject(raw) }
            do {
                replies.append(try Self.convert(raw.assumingMemoryBound(to: redisReply.self)))
            } catch let error as RedisError {
                firstError = firstError ?? error
                replies.append(.null)
            }
        }
        if let firstError { throw firstError }
        return replies
    }

    /// Reads one reply without sending anything (a subscribed connection's next message). Nil
    /// when nothing came within the timeout or the connection broke: either way it is unusable.
    func read() throws -> RedisValue? {
        var raw: UnsafeMutableRawPointer?
        guard redisGetReply(context, &raw) == REDIS_OK, let raw else { return nil }
        defer { freeReplyObject(raw) }
        return try Self.convert(raw.assumingMemoryBound(to: redisReply.self))
    }

    private static func convert(_ reply: UnsafeMutablePointer<redisReply>) throws -> RedisValue {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_NIL: return .null
        case REDIS_REPLY_INTEGER: return .integer(r.integer)
        case REDIS_REPLY_STRING: return .string(text(r))
        case REDIS_REPLY_STATUS: return .status(text(r))
        case REDIS_REPLY_ARRAY:
            return .array(try (0..<r.elements).map { try convert(r.element[$0]!) })
        case REDIS_REPLY_ERROR:
            let message = text(r)
            throw RedisError(message.hasPrefix("NOSCRIPT") ? .noScript : .server, message)
        default: return .null
        }
    }

    private static func text(_ r: redisReply) -> String {
        guard let str = r.str else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: str, count: r.len), as: UTF8.self)
    }

    private var errorText: String {
        withUnsafeBytes(of: context.pointee.errstr) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// Copies the arguments into C buffers that live for the call; lengths make it binary-safe.
    private static func withArgv<T>(_ args: [String], _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> T) -> T {
        let buffers: [UnsafeMutableBufferPointer<CChar>] = args.map { arg in
            let bytes = Array(arg.utf8)
            let buffer = UnsafeMutableBufferPointer<CChar>.allocate(capacity: max(1, bytes.count))
            bytes.withUnsafeBytes { source in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: source)
            }
            return buffer
        }
        defer { buffers.forEach { $0.deallocate() } }
        var argv: [UnsafePointer<CChar>?] = buffers.map { UnsafePointer($0.baseAddress) }
        let lengths = args.map { $0.utf8.count }
        return argv.withUnsafeMutableBufferPointer { argvBuffer in
            lengths.withUnsafeBufferPointer { body(Int32(args.count), argvBuffer.baseAddress!, $0.baseAddress!) }
        }
    }

    static func timeval(_ duration: Duration) -> Glibc.timeval {
        let (seconds, attoseconds) = duration.components
        return Glibc.timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}
