import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// A raw Server-Sent Events client on loopback: it sends one GET and keeps what arrives. It can
/// stop reading (a slow client: the server's writes back up) and start again.
final class SSEClient: Sendable {
    let channel: any Channel
    let collector: Collector

    final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let text = Mutex("")
        let closed = Mutex(false)

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            let chunk = String(buffer: buffer)
            text.withLock { $0 += chunk }
        }

        func channelInactive(context: ChannelHandlerContext) {
            closed.withLock { $0 = true }
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

    var text: String { collector.text.withLock { $0 } }
    var isClosed: Bool { collector.closed.withLock { $0 } }
    /// The response ended: its last chunk came (the connection may stay open), or it closed.
    var isEnded: Bool { isClosed || text.replacingOccurrences(of: "\r\n", with: "\n").hasSuffix("\n0\n\n") }

    /// The `id:` of each frame whose `event:` is `event` (all frames when nil), in order.
    func ids(event: String? = nil) -> [String] {
        // "\r\n" is one Character to Swift: chunk sizes and headers are read without the "\r".
        text.replacingOccurrences(of: "\r\n", with: "\n").components(separatedBy: "\n\n").compactMap { frame -> String? in
            let lines = frame.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let id = lines.first(where: { $0.hasPrefix("id: ") }).map({ String($0.dropFirst(4)) }) else { return nil }
            if let event, !lines.contains("event: \(event)") { return nil }
            return id
        }
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
