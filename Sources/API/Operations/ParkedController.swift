import Events
import Foundation
import HTTPTypes
import Hummingbird
import Projections

/// Parked (poison) events for operators, as `chronicle parked` offers them: list, retry, skip.
/// Admins only: other roles get 403 (these are not anyone's resources, so there is nothing to hide).
public struct ParkedController: Sendable {
    let parking: any ParkedEventStore

    public init(parking: any ParkedEventStore) {
        self.parking = parking
    }

    public func addRoutes(to group: RouterGroup<ChronicleRequestContext>) {
        group.get(use: list)
        group.post(":projector/:event_id/retry") { request, context in try await self.settle(.retry, request, context) }
        group.post(":projector/:event_id/skip") { request, context in try await self.settle(.skip, request, context) }
    }

    struct Item: Encodable {
        var projector: String
        var eventID: String
        var streamID: String
        var streamVersion: Int64
        var position: String
        var error: String
        var attempts: Int
        var heldBehind: String?
        var status: String
        var parkedAt: String

        enum CodingKeys: String, CodingKey {
            case projector, position, error, attempts, status
            case eventID = "event_id"
            case streamID = "stream_id"
            case streamVersion = "stream_version"
            case heldBehind = "held_behind"
            case parkedAt = "parked_at"
        }

        func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(projector, forKey: .projector)
            try container.encode(eventID, forKey: .eventID)
            try container.encode(streamID, forKey: .streamID)
            try container.encode(streamVersion, forKey: .streamVersion)
            try container.encode(position, forKey: .position)
            try container.encode(error, forKey: .error)
            try container.encode(attempts, forKey: .attempts)
            try container.encode(heldBehind, forKey: .heldBehind)
            try container.encode(status, forKey: .status)
            try container.encode(parkedAt, forKey: .parkedAt)
        }
    }

    struct Listing: Encodable {
        var items: [Item]
    }

    struct Settled: Encodable {
        var projector: String
        var eventID: String
        var status: String

        enum CodingKeys: String, CodingKey {
            case projector, status
            case eventID = "event_id"
        }
    }

    static func requireAdmin(_ context: ChronicleRequestContext) throws {
        guard try context.requirePrincipal().isAdmin else {
            throw Problem(.forbidden, code: "auth.forbidden", detail: "only admins operate projectors")
        }
    }

    /// A projector name as Chronicle names them; anything else (control characters, NUL, which
    /// Postgres cannot even compare) names no projector.
    static func isName(_ text: String) -> Bool {
        (1...100).contains(text.count) && text.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7F }
    }

    @Sendable func list(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        try Self.requireAdmin(context)
        let projector = request.uri.queryParameters.get("projector")
        if let projector, !Self.isName(projector) {
            throw Problem(.badRequest, code: "request.invalid_query", detail: "projector must be a projector's name (see chronicle projections list)")
        }
        let items = try await parking.parked(projector: projector).map { event in
            Item(
                projector: event.projector, eventID: event.eventID.uuidString.lowercased(), streamID: event.streamID,
                streamVersion: event.streamVersion, position: Reply.token(event.checkpoint), error: event.error, attempts: event.attempts,
                heldBehind: event.heldBehind?.uuidString.lowercased(), status: event.status, parkedAt: Timestamp.format(event.parkedAt))
        }
        return try Reply.json(Listing(items: items), status: .ok, context: context)
    }

    func settle(_ action: ParkedEvent.Action, _ request: Request, _ context: ChronicleRequestContext) async throws -> Response {
        try Self.requireAdmin(context)
        let notFound = Problem(.notFound, code: "parked.not_found", detail: "no such parked event for that projector")
        guard let projector = context.parameters.get("projector"), Self.isName(projector), let raw = context.parameters.get("event_id"),
            let eventID = UUID(uuidString: raw)
        else { throw notFound }
        guard try await parking.request(action, projector: projector, eventID: eventID) else { throw notFound }
        return try Reply.json(
            Settled(projector: projector, eventID: eventID.uuidString.lowercased(), status: action.rawValue), status: .accepted, context: context)
    }
}

extension ParkedController {
    /// Its routes, under `/api/v1/admin/parked`.
    public var mount: RouteMount { RouteMount("admin/parked", add: { addRoutes(to: $0) }) }
}
