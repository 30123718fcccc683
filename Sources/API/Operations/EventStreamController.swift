import Events
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Projections

/// `GET /api/v1/admin/events/stream`: the log as Server-Sent Events, for operators and audit
/// consumers, from the process's push hub. Admins only (it crosses every owner).
///
/// - `stream` (one stream id) or `category` (e.g. `agentexecution`) filter it.
/// - With `after` (a checkpoint, `transaction/position`) or `Last-Event-ID`, it first catches up
///   from the log, then goes live, with no gap and no repeat; without, it starts live.
/// - Each frame's `id` is the event's checkpoint, so a client that reconnects with it resumes
///   exactly. A client that falls more than the hub's buffer behind gets a `dropped` frame whose
///   `id` is where to resume.
public struct EventStreamController: Sendable {
    let hub: EventHub

    public init(hub: EventHub) {
        self.hub = hub
    }

    public func addRoutes(to group: RouterGroup<ChronicleRequestContext>) {
        group.get("stream", use: stream)
    }

    /// Its routes, under `/api/v1/admin/events`.
    public var mount: RouteMount { RouteMount("admin/events", add: { addRoutes(to: $0) }) }

    @Sendable func stream(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        guard principal.isAdmin else {
            throw Problem(.forbidden, code: "auth.forbidden", detail: "only admins read the whole log")
        }
        let query = request.uri.queryParameters
        let streamID = query.get("stream").flatMap { $0.isEmpty ? nil : $0 }
        let category = query.get("category").flatMap { $0.isEmpty ? nil : $0 }
        for (name, value) in [("stream", streamID), ("category", category)] where (value?.utf8.count ?? 0) > 256 {
            throw Problem(.badRequest, code: "request.invalid_query", detail: "\(name) must be at most 256 bytes")
        }
        let resume = query.get("after") ?? request.headers[.init("Last-Event-ID")!]
        var after: Checkpoint?
        if let resume, !resume.isEmpty {
            guard let checkpoint = Checkpoint(resume) else {
                throw Problem(
                    .badRequest, code: "request.invalid_query",
                    detail: "after (or Last-Event-ID) must be a checkpoint as the stream gives it, e.g. 1234/567")
            }
            after = checkpoint
        }
        let subscription = hub.subscribe(HubFilter(streamID: streamID, category: category), after: after)
        let body = ResponseBody { writer in
            try await ServerSentEvents.pump(subscription, to: &writer) { event, out in
                out = try Self.frame(event)
                return true
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: ServerSentEvents.headers, body: body)
    }

    static func frame(_ event: RecordedEvent) throws -> ByteBuffer {
        let data = (try? EventCoding.decode(JSONValue.self, from: event.data)) ?? .null
        let object: JSONValue = .object([
            "checkpoint": .string(event.checkpoint.description), "stream_id": .string(event.streamID),
            "stream_version": .number(Double(event.streamVersion)), "event_id": .string(event.eventID.uuidString.lowercased()),
            "event_type": .string(event.eventType), "schema_version": .number(Double(event.schemaVersion)),
            "recorded_at": .string(Timestamp.format(event.recordedAt)), "data": data,
        ])
        let text = String(decoding: try EventCoding.encode(object), as: UTF8.self)
        return ServerSentEvents.frame(id: event.checkpoint.description, event: event.eventType, data: text)
    }
}
