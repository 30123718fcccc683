import Foundation
import HTTPTypes
import HummingbirdWSClient
import Logging
import Synchronization

/// A WebSocket client of `GET /api/v1/workflows/{id}/live` for tests: messages in as JSON text,
/// out as JSON objects; `close()` ends the connection from the client's side.
final class LiveClient: Sendable {
    let outgoing: AsyncStream<String?>.Continuation
    let task: Task<Void, Never>
    /// Messages received and not yet taken; `ended` once the connection is gone.
    final class Mailbox: Sendable {
        let state = Mutex<(messages: [String], ended: Bool)>(([], false))
        func withLock<T>(_ body: (inout (messages: [String], ended: Bool)) -> T) -> T { state.withLock { body(&$0) } }
    }
    let box: Mailbox

    /// - Parameter token: sent as `bearer.<token>` in `Sec-WebSocket-Protocol`; nil to send it in
    ///   a first `auth` message instead.
    init(base: String, workflow: String, token: String, inProtocol: Bool = true) {
        let (outgoingStream, outgoing) = AsyncStream.makeStream(of: String?.self)
        self.outgoing = outgoing
        let box = Mailbox()
        self.box = box
        let url = base.replacingOccurrences(of: "http://", with: "ws://") + "/api/v1/workflows/\(workflow)/live"
        var configuration = WebSocketClientConfiguration(maxFrameSize: 1 << 20)
        if inProtocol { configuration.additionalHeaders = [.secWebSocketProtocol: "chronicle.workflow.v1, bearer.\(token)"] }
        if !inProtocol { outgoing.yield(#"{"type":"auth","token":"\#(token)"}"#) }
        task = Task {
            _ = try? await WebSocketClient.connect(url: url, configuration: configuration, logger: Logger(label: "live-client")) { inbound, outbound, _ in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for try await message in inbound.messages(maxSize: 1 << 24) {
                            if case .text(let text) = message { box.withLock { $0.messages.append(text) } }
                        }
                    }
                    group.addTask {
                        for await text in outgoingStream {
                            guard let text else { break }
                            try await outbound.writeTextMessage(text)
                        }
                        try await outbound.close(.normalClosure, reason: nil)
                    }
                    _ = try await group.next()
                    group.cancelAll()
                }
            }
            box.withLock { $0.ended = true }
        }
    }

    /// The next message, or nil when the connection ended or nothing came within `timeout`.
    func next(timeout: Duration = .seconds(10)) async -> [String: Any]? {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            let (text, ended) = box.withLock { box -> (String?, Bool) in
                box.messages.isEmpty ? (nil, box.ended) : (box.messages.removeFirst(), false)
            }
            if let text { return Self.parse(text) }
            if ended || ContinuousClock.now >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    /// Whether the connection has ended (every message received has been taken or is buffered).
    var ended: Bool { box.withLock { $0.ended } }

    func send(_ json: [String: Any]) {
        let data = (try? JSONSerialization.data(withJSONObject: json)) ?? Data()
        outgoing.yield(String(decoding: data, as: UTF8.self))
    }

    func close() {
        outgoing.yield(nil)
        outgoing.finish()
    }

    static func parse(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
    }
}

