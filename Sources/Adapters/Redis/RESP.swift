import NIOCore

/// RESP2, the protocol Redis speaks: commands out as arrays of bulk strings, replies in as one of
/// five types. An error reply is a value here, not a thrown error: one command's error does not
/// disturb the replies after it.
enum RESP {
    typealias Reply = Result<RedisValue, RedisError>

    /// The largest bulk string or array a reply may announce (Redis' own `proto-max-bulk-len`
    /// default is 512 MB): a corrupt length fails the connection instead of allocating it.
    static let maxLength = 512 * 1024 * 1024

    /// Appends `*N\r\n` and a `$len\r\nbytes\r\n` per argument: binary-safe, no escaping.
    static func encode(_ args: [String], into buffer: inout ByteBuffer) {
        buffer.writeStaticString("*")
        buffer.writeString(String(args.count))
        buffer.writeStaticString("\r\n")
        for arg in args {
            buffer.writeStaticString("$")
            buffer.writeString(String(arg.utf8.count))
            buffer.writeStaticString("\r\n")
            buffer.writeString(arg)
            buffer.writeStaticString("\r\n")
        }
    }

    /// One whole reply from the front of `buffer`, which it then consumes; nil, consuming
    /// nothing, when the reply has not fully arrived. Throws on bytes that are not RESP2.
    static func parse(_ buffer: inout ByteBuffer) throws -> Reply? {
        var copy = buffer
        guard let reply = try parseValue(&copy) else { return nil }
        buffer = copy
        return reply
    }

    private static func parseValue(_ buffer: inout ByteBuffer) throws -> Reply? {
        guard let type = buffer.readInteger(as: UInt8.self), let line = try readLine(&buffer) else { return nil }
        switch type {
        case UInt8(ascii: "+"):
            return .success(.status(line))
        case UInt8(ascii: "-"):
            return .failure(RedisError(line.hasPrefix("NOSCRIPT") ? .noScript : .server, line))
        case UInt8(ascii: ":"):
            guard let value = Int64(line) else { throw protocolError("an integer reply was \(line.prefix(32))") }
            return .success(.integer(value))
        case UInt8(ascii: "$"):
            let length = try self.length(line)
            guard length >= 0 else { return .success(.null) }
            guard buffer.readableBytes >= length + 2, let text = buffer.readString(length: length) else { return nil }
            guard buffer.readInteger(as: UInt16.self) == 0x0D0A else { throw protocolError("a bulk string did not end in CRLF") }
            return .success(.string(text))
        case UInt8(ascii: "*"):
            let count = try self.length(line)
            guard count >= 0 else { return .success(.null) }
            var elements: [RedisValue] = []
            elements.reserveCapacity(min(count, 1024))
            var failure: RedisError?
            for _ in 0..<count {
                guard let element = try parseValue(&buffer) else { return nil }
                switch element {
                case .success(let value): elements.append(value)
                case .failure(let error):
                    // An error inside an array (a transaction's) fails the reply, as hiredis' did.
                    failure = failure ?? error
                    elements.append(.null)
                }
            }
            if let failure { return .failure(failure) }
            return .success(.array(elements))
        default:
            throw protocolError("unknown reply type \(type)")
        }
    }

    /// The text up to the next CRLF, consumed with it; nil when no CRLF has arrived yet.
    private static func readLine(_ buffer: inout ByteBuffer) throws -> String? {
        let view = buffer.readableBytesView
        guard let cr = view.firstIndex(of: UInt8(ascii: "\r")) else {
            if view.count > 64 * 1024 { throw protocolError("a reply line had no end") }
            return nil
        }
        let length = cr - view.startIndex
        guard buffer.readableBytes >= length + 2 else { return nil }
        let line = buffer.readString(length: length) ?? ""
        guard buffer.readInteger(as: UInt8.self) == UInt8(ascii: "\r"), buffer.readInteger(as: UInt8.self) == UInt8(ascii: "\n") else {
            throw protocolError("a reply line's CR was not followed by LF")
        }
        return line
    }

    private static func length(_ line: String) throws -> Int {
        guard let length = Int(line), length >= -1, length <= maxLength else { throw protocolError("a length was \(line.prefix(32))") }
        return length
    }

    private static func protocolError(_ message: String) -> RedisError {
        RedisError(.connection, "protocol error: \(message)")
    }
}

/// Replies, one `RESP.Reply` each, from the bytes of a connection.
struct RESPDecoder: ByteToMessageDecoder {
    typealias InboundOut = RESP.Reply

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let reply = try RESP.parse(&buffer) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(reply))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }
}

/// Matches replies to requests in the order they were written: a request is several commands
/// sent together (a pipeline) and completes when all their replies are in. A connection that
/// closes or fails fails every request still waiting, and is not used again.
final class RedisRequestHandler: ChannelDuplexHandler {
    typealias InboundIn = RESP.Reply
    typealias OutboundIn = Request
    typealias OutboundOut = ByteBuffer

    struct Request {
        let commands: [[String]]
        let promise: EventLoopPromise<[RESP.Reply]>
    }

    private var waiting = CircularBuffer<(expected: Int, replies: [RESP.Reply], promise: EventLoopPromise<[RESP.Reply]>)>()
    private var failed: RedisError?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        if let failed {
            request.promise.fail(failed)
            promise?.fail(failed)
            return
        }
        var buffer = context.channel.allocator.buffer(capacity: 64 * request.commands.count)
        for command in request.commands { RESP.encode(command, into: &buffer) }
        waiting.append((request.commands.count, [], request.promise))
        context.write(wrapOutboundOut(buffer), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !waiting.isEmpty else {
            failAll(RedisError(.connection, "a reply came with no command waiting for it"), context: context)
            return
        }
        waiting[waiting.startIndex].replies.append(unwrapInboundIn(data))
        if let first = waiting.first, first.replies.count == first.expected {
            waiting.removeFirst()
            first.promise.succeed(first.replies)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(RedisError(.connection, "the connection closed"), context: context)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(error as? RedisError ?? RedisError(.connection, "\(error)"), context: context)
    }

    private func failAll(_ error: RedisError, context: ChannelHandlerContext) {
        failed = failed ?? error
        while let request = waiting.popFirst() { request.promise.fail(error) }
        context.close(promise: nil)
    }
}
