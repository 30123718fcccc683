import Commands
import Events
import Foundation
import Hummingbird

/// The audit routes under `/api/v1/audit`, read from the log itself: a stream's history (each
/// event upcast to its current shape, with who caused it), and every event one request caused
/// across streams. Owner-scoped from the log (`StreamOwners`): a member reads the streams they
/// own, an admin reads all; another owner's stream answers 404.
public struct AuditController: Sendable {
    let store: any EventStore & CorrelationReader
    let registry: EventRegistry
    let owners: StreamOwners
    /// Each stream category's own decider, which folds its state as of a point.
    let deciders: [String: AuditedDecider]

    public init(store: any EventStore & CorrelationReader, registry: EventRegistry, deciders: [String: AuditedDecider] = [:]) {
        self.store = store
        self.registry = registry
        self.deciders = deciders
        owners = StreamOwners(store: store)
    }

    public func addRoutes(to group: RouterGroup<ChronicleRequestContext>) {
        group.get("streams/:stream_id", use: history)
        group.get("streams/:stream_id/state", use: state)
        group.get("streams/:stream_id/diff", use: diff)
        group.get("correlations/:correlation_id", use: correlation)
    }

    static let streamNotFound = Problem(.notFound, code: "audit.stream_not_found", detail: "no such stream")

    struct Event: Encodable {
        var streamID: String
        var version: Int64
        var position: Int64
        var eventID: String
        var type: String
        var storedSchemaVersion: Int
        var recordedAt: String
        var payload: JSONValue
        var userID: String?
        var tenantID: String?
        var correlationID: String?
        var causationID: String?
        var commandID: String?

        enum CodingKeys: String, CodingKey {
            case version, position, type, payload
            case streamID = "stream_id"
            case eventID = "event_id"
            case storedSchemaVersion = "stored_schema_version"
            case recordedAt = "recorded_at"
            case userID = "user_id"
            case tenantID = "tenant_id"
            case correlationID = "correlation_id"
            case causationID = "causation_id"
            case commandID = "command_id"
        }

        func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(streamID, forKey: .streamID)
            try container.encode(version, forKey: .version)
            try container.encode(position, forKey: .position)
            try container.encode(eventID, forKey: .eventID)
            try container.encode(type, forKey: .type)
            try container.encode(storedSchemaVersion, forKey: .storedSchemaVersion)
            try container.encode(recordedAt, forKey: .recordedAt)
            try container.encode(payload, forKey: .payload)
            try container.encode(userID, forKey: .userID)
            try container.encode(tenantID, forKey: .tenantID)
            try container.encode(correlationID, forKey: .correlationID)
            try container.encode(causationID, forKey: .causationID)
            try container.encode(commandID, forKey: .commandID)
        }
    }

    struct History: Encodable {
        var streamID: String
        var ownerID: String?
        var events: [Event]
        var nextFromVersion: Int64?

        enum CodingKeys: String, CodingKey {
            case events
            case streamID = "stream_id"
            case ownerID = "owner_id"
            case nextFromVersion = "next_from_version"
        }

        func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(streamID, forKey: .streamID)
            try container.encode(ownerID, forKey: .ownerID)
            try container.encode(events, forKey: .events)
            try container.encode(nextFromVersion, forKey: .nextFromVersion)
        }
    }

    struct Correlation: Encodable {
        var correlationID: String
        var events: [Event]
        var nextAfter: Int64?

        enum CodingKeys: String, CodingKey {
            case events
            case correlationID = "correlation_id"
            case nextAfter = "next_after"
        }

        func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(correlationID, forKey: .correlationID)
            try container.encode(events, forKey: .events)
            try container.encode(nextAfter, forKey: .nextAfter)
        }
    }

    /// The event as audited: its payload lifted to the current shape by the registry's upcasters
    /// (as stored, if its type is not registered).
    func audited(_ event: RecordedEvent) -> Event {
        let current = (try? registry.upcast(type: event.eventType, version: event.schemaVersion, data: event.data)) ?? event.data
        let payload = (try? EventCoding.decode(JSONValue.self, from: current)) ?? .null
        return Event(
            streamID: event.streamID, version: event.streamVersion, position: event.position, eventID: event.eventID.uuidString.lowercased(),
            type: event.eventType, storedSchemaVersion: event.schemaVersion, recordedAt: Timestamp.format(event.recordedAt), payload: payload,
            userID: event.metadata.userID, tenantID: event.metadata.tenantID, correlationID: event.metadata.correlationID,
            causationID: event.metadata.causationID, commandID: event.metadata.commandID)
    }

    /// An id the log can hold: 1 to 200 characters, none of them a control character (Postgres
    /// text cannot hold U+0000, and no stream or request id has one).
    static func plain(_ id: String) -> Bool {
        TextLimit(characters: 1...200).admits(id) && !id.unicodeScalars.contains { CharacterSet.controlCharacters.contains($0) }
    }

    func mayRead(_ stream: String, _ principal: Principal) async throws -> Bool {
        if principal.isAdmin { return true }
        guard let owner = try await owners.owner(of: stream) else { return false }
        return owner == principal.userID
    }

    /// `?from_version=` (1) and `?limit=` (100, at most 1,000).
    @Sendable func history(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        guard let stream = context.parameters.get("stream_id"), StreamID(stream) != nil, Self.plain(stream) else { throw Self.streamNotFound }
        let from = try Reply.integer(request, "from_version", default: 1, range: 1...Int(Int32.max))
        let limit = try Reply.integer(request, "limit", default: 100, range: 1...1000)
        guard try await store.streamVersion(stream) > 0, try await mayRead(stream, principal) else { throw Self.streamNotFound }
        let events = try await store.readStream(stream, from: Int64(from), direction: .forward, limit: limit + 1)
        let page = events.prefix(limit)
        return try Reply.json(
            History(
                streamID: stream, ownerID: try await owners.owner(of: stream), events: page.map(audited),
                nextFromVersion: events.count > limit ? events[limit].streamVersion : nil),
            status: .ok, context: context)
    }

    /// Every event one request caused, in global order: the member's own streams' (an admin's:
    /// all). `?after=` (a position) and `?limit=` (100, at most 1,000) page through it.
    @Sendable func correlation(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        guard let correlationID = context.parameters.get("correlation_id"), Self.plain(correlationID) else {
            throw Problem(.notFound, code: "audit.correlation_not_found", detail: "no such correlation id")
        }
        let after = try Reply.integer(request, "after", default: 0, range: 0...Int.max)
        let limit = try Reply.integer(request, "limit", default: 100, range: 1...1000)
        let found = try await store.correlated(correlationID, after: Int64(after), limit: limit)
        var visible: [Event] = []
        for event in found where try await mayRead(event.streamID, principal) { visible.append(audited(event)) }
        return try Reply.json(
            Correlation(correlationID: correlationID, events: visible, nextAfter: found.count == limit ? found.last?.position : nil), status: .ok,
            context: context)
    }
}

// MARK: State as of a point, and the diff between two

extension AuditController {
    /// From `?<prefix>version=` or `?<prefix>at=`, at most one of them.
    static func point(_ request: Request, prefix: String, otherwise: StatePoint) throws -> StatePoint {
        let version = request.uri.queryParameters.get("\(prefix)version"), at = request.uri.queryParameters.get("\(prefix)at")
        switch (version, at) {
        case (nil, nil): return otherwise
        case (_?, _?):
            throw Problem(.badRequest, code: "request.invalid_query", detail: "give \(prefix)version or \(prefix)at, not both")
        case (let text?, nil):
            guard let number = Int64(text), number >= 0 else {
                throw Problem(.badRequest, code: "request.invalid_query", detail: "\(prefix)version must be an integer from 0")
            }
            return .version(number)
        case (nil, let text?):
            guard let date = Timestamp.parse(text) else {
                throw Problem(
                    .badRequest, code: "request.invalid_query", detail: "\(prefix)at must be an RFC 3339 time, e.g. 2026-11-30T14:02:00Z")
            }
            return .at(date)
        }
    }

    /// Two points of a stream and every leaf of the state that differs between them.
    public static func diff(_ before: FoldedState, _ after: FoldedState) -> JSONValue {
        .object([
            "stream_id": .string(before.streamID), "from": before.summary, "to": after.summary,
            "changes": .array(StateJSON.diff(before.state, after.state).map(\.json)),
        ])
    }

    /// The readable stream and its decider, or the problem to answer.
    func auditable(_ context: ChronicleRequestContext) async throws -> (stream: String, decider: AuditedDecider) {
        let principal = try context.requirePrincipal()
        guard let stream = context.parameters.get("stream_id"), let id = StreamID(stream), Self.plain(stream) else { throw Self.streamNotFound }
        let head = try await store.streamVersion(stream)
        guard head > 0, try await mayRead(stream, principal) else { throw Self.streamNotFound }
        guard let decider = deciders[id.category] else {
            throw Problem(
                .unprocessableContent, code: "audit.no_decider",
                detail: "streams of category \(id.category) have no decider to fold their state; their history is at /api/v1/audit/streams/\(stream)")
        }
        return (stream, decider)
    }

    /// `?version=` or `?at=` (default: the newest version).
    @Sendable func state(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let point = try Self.point(request, prefix: "", otherwise: .head)
        let (stream, decider) = try await auditable(context)
        return try Reply.json(try await decider.fold(stream, in: store, to: point, registry: registry).json, status: .ok, context: context)
    }

    /// `?from_version=`/`?from_at=` (default 0: before the first event) and `?to_version=`/`?to_at=`
    /// (default: the newest): every leaf of the state that differs, by JSON pointer.
    @Sendable func diff(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let from = try Self.point(request, prefix: "from_", otherwise: .version(0))
        let to = try Self.point(request, prefix: "to_", otherwise: .head)
        let (stream, decider) = try await auditable(context)
        let before = try await decider.fold(stream, in: store, to: from, registry: registry)
        let after = try await decider.fold(stream, in: store, to: to, registry: registry)
        return try Reply.json(Self.diff(before, after), status: .ok, context: context)
    }
}

extension AuditController {
    /// Its routes, under `/api/v1/audit`.
    public var mount: RouteMount { RouteMount("audit", add: { addRoutes(to: $0) }) }
}
