import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// A raw Server-Sent Events client on loopback: it sends one GET and keeps what arrives. It can
/// stop reading (a slow client: the server's writes back up) and start again.
final class SSEClient: Sendable {
    let channel: any Channel
    let collector: Collector

    /// Parses frames as they arrive, on the event loop, keeping each frame's `id` and `event`
    /// (and its data when small) and the first MiB of text: a test reading 18 MB must not slow
    /// the client down by copying it.
    final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        struct State {
            var text = ""
            var carry: [UInt8] = []
            var frames: [(id: String, event: String, data: String)] = []
            var ended = false
            var closed = false
        }
        let state = Mutex(State())

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = Array(unwrapInboundIn(data).readableBytesView)
            state.withLock { state in
                if state.text.utf8.count < 1 << 20 { state.text += String(decoding: bytes, as: UTF8.self) }
                state.carry += bytes
                var start = 0
                var index = 0
                let carry = state.carry
                while index + 1 < carry.count {
                    if carry[index] == 10, carry[index + 1] == 10 {
                        state.frames += Self.frame(carry[start..<index])
                        start = index + 2
                        index += 2
                    } else {
                        index += 1
                    }
                }
                state.carry = Array(carry[start...])
                let rest = String(decoding: state.carry, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                if rest == "0" { state.ended = true }
            }
        }

        /// A frame's `id:` and `event:` lines (chunk sizes and `\r` ignored).
        static func frame(_ bytes: ArraySlice<UInt8>) -> [(id: String, event: String, data: String)] {
            var id: String?
            var event = "message"
            var data = ""
            for line in bytes.split(separator: 10) {
                let text = String(decoding: line.prefix(8192), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                if text.hasPrefix("id: ") { id = String(text.dropFirst(4)) }
                if text.hasPrefix("event: ") { event = String(text.dropFirst(7)) }
                if text.hasPrefix("data: "), line.count < 8192 { data = String(text.dropFirst(6)) }
            }
            return id.map { [($0, event, data)] } ?? []
        }

        func channelInactive(context: ChannelHandlerContext) {
            state.withLock { $0.closed = true }
            context.fireChannelInactive()
        }
    }

    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    private init(channel: any Channel, collector: Collector) {
        self.channel = channel
        self.collector = collector
    }

    /// Connects and sends the request; `reading: false` leaves the socket unread.
    static func open(port: Int, path: String, token: String, headers: [String: String] = [:], reading: Bool = true) async throws -> SSEClient {
        let collector = Collector()
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.autoRead, value: reading)
            .channelOption(.socketOption(.so_rcvbuf), value: reading ? 1 << 20 : 4096)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAccept: text/event-stream\r\nAuthorization: Bearer \(token)\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        request += "\r\n"
        try await channel.writeAndFlush(ByteBuffer(string: request)).get()
        return SSEClient(channel: channel, collector: collector)
    }

    /// The first MiB of what arrived.
    var text: String { collector.state.withLock { $0.text } }
    var isClosed: Bool { collector.state.withLock { $0.closed } }
    /// The response ended: its last chunk came (the connection may stay open), or it closed.
    var isEnded: Bool { collector.state.withLock { $0.ended || $0.closed } }

    /// The `id:` of each frame whose `event:` is `event` (all frames when nil), in order.
    func ids(event: String? = nil) -> [String] {
        collector.state.withLock { state in state.frames.filter { event == nil || $0.event == event }.map(\.id) }
    }

    /// The data of each frame whose `event:` is `event` (empty for data over 8 KiB).
    func data(event: String) -> [String] {
        collector.state.withLock { state in state.frames.filter { $0.event == event }.map(\.data) }
    }

    /// Starts reading again (a slow client catching up).
    func resumeReading() async throws {
        try await channel.setOption(.autoRead, value: true).get()
        channel.read()
    }

    /// Waits until `condition` holds for what arrived, for at most `timeout`.
    @discardableResult
    func waitUntil(timeout: Duration = .seconds(30), _ condition: (SSEClient) -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while !condition(self) {
            guard ContinuousClock.now < deadline else { return false }
            try await Task.sleep(for: .milliseconds(50))
        }
        return true
    }

    func close() async {
        try? await channel.close()
    }
}
