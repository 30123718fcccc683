@testable import Adapters
import NIOCore
import Testing

/// The RESP2 reply parser on bytes as the network delivers them: whole, split anywhere, or wrong.
@Suite struct RESPTests {
    static let replies: [(bytes: String, reply: RESP.Reply)] = [
        ("+OK\r\n", .success(.status("OK"))),
        ("-ERR wrong type\r\n", .failure(RedisError(.server, "ERR wrong type"))),
        ("-NOSCRIPT No matching script\r\n", .failure(RedisError(.noScript, "NOSCRIPT No matching script"))),
        (":-42\r\n", .success(.integer(-42))),
        ("$-1\r\n", .success(.null)),
        ("$0\r\n\r\n", .success(.string(""))),
        // Binary-safe: a CRLF inside a bulk string is data.
        ("$9\r\nhé\r\nllo!\r\n", .success(.string("hé\r\nllo!"))),
        ("*-1\r\n", .success(.null)),
        ("*0\r\n", .success(.array([]))),
        ("*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n+x\r\n", .success(.array([.integer(1), .array([.string("a"), .null]), .status("x")]))),
        ("*2\r\n:1\r\n-ERR in a transaction\r\n", .failure(RedisError(.server, "ERR in a transaction"))),
    ]

    @Test func wholeRepliesParse() throws {
        for (bytes, reply) in Self.replies {
            var buffer = ByteBuffer(string: bytes)
            #expect(try RESP.parse(&buffer) == reply, "\(bytes.debugDescription)")
            #expect(buffer.readableBytes == 0, "\(bytes.debugDescription) left bytes unread")
        }
    }

    /// Every reply, cut at every byte: nothing parses and nothing is consumed until the whole
    /// reply is there, then it parses as if it had come at once.
    @Test func repliesSplitAtEveryByteWaitForTheRest() throws {
        for (bytes, reply) in Self.replies {
            let all = Array(bytes.utf8)
            for cut in 0..<all.count {
                var buffer = ByteBuffer(bytes: all[..<cut])
                #expect(try RESP.parse(&buffer) == nil, "\(bytes.debugDescription) cut at \(cut)")
                #expect(buffer.readableBytes == cut)
                buffer.writeBytes(all[cut...])
                #expect(try RESP.parse(&buffer) == reply)
            }
        }
    }

    @Test func severalRepliesInOneReadParseInOrder() throws {
        var buffer = ByteBuffer(string: Self.replies.map(\.bytes).joined())
        for (_, reply) in Self.replies { #expect(try RESP.parse(&buffer) == reply) }
        #expect(try RESP.parse(&buffer) == nil)
    }

    @Test func bytesThatAreNotRESPFailTheConnection() {
        for bytes in ["?what\r\n", ":12a\r\n", "$3\r\nabcXY", "$-2\r\n", "*99999999999\r\n", "+OK\rX"] {
            var buffer = ByteBuffer(string: bytes)
            #expect(throws: RedisError.self, "\(bytes.debugDescription)") { try RESP.parse(&buffer) }
        }
    }

    @Test func commandsEncodeAsArraysOfBulkStrings() {
        var buffer = ByteBuffer()
        RESP.encode(["SET", "k", "hé\r\n"], into: &buffer)
        #expect(String(buffer: buffer) == "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhé\r\n\r\n")
    }
}
