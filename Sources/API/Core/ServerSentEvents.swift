import Events
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Projections

/// Server-Sent Events on the push hub: the response headers, the frame format, and the loop both
/// SSE routes share (a keep-alive comment every 15 s so proxies keep an idle stream open; an end
/// after an hour; the hub's drop notice passed on with the position to resume after).
enum ServerSentEvents {
    static let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache", .init("X-Accel-Buffering")!: "no"]
    static let keepAlive = ByteBuffer(string: ": keep-alive\n\n")

    static func frame(id: String, event: String, data: String) -> ByteBuffer {
        ByteBuffer(string: "id: \(id)\nevent: \(event)\ndata: \(data)\n\n")
    }

    /// The hub dropped this client for falling behind: the last frame says where to resume. Its
    /// `id` is the resume position, so an EventSource that reconnects sends it as `Last-Event-ID`.
    static func dropped(resumeAfter checkpoint: Checkpoint) -> ByteBuffer {
        frame(id: checkpoint.description, event: "dropped", data: "{\"resume_after\":\"\(checkpoint.description)\"}")
    }

    /// Feeds the subscription's events to `handle` until it says stop, the hub drops the client
    /// (the drop frame is written), the subscription ends, or `lifetime` passes. Cancels the
    /// subscription at the end.
    static func pump(
        _ subscription: HubSubscription, to writer: inout any ResponseBodyWriter, lifetime: Duration = .seconds(3600),
        _ handle: (RecordedEvent, inout ByteBuffer?) async throws -> Bool
    ) async throws {
        defer { subscription.cancel() }
        let end = ContinuousClock.now.advanced(by: lifetime)
        while ContinuousClock.now < end {
            switch try await subscription.next(timeout: .seconds(15)) {
            case .idle:
                try await writer.write(keepAlive)
            case .ended:
                return
            case .message(.dropped(let resume)):
                try await writer.write(dropped(resumeAfter: resume))
                return
            case .message(.event(let event)):
                var out: ByteBuffer?
                let goOn = try await handle(event, &out)
                if let out { try await writer.write(out) }
                if !goOn { return }
            }
        }
    }
}
