import Foundation

/// Which events leave Chronicle, under which name, and where to. A contract is versioned apart
/// from the stored schema: consumers see `contract_version`, and a stored schema can change (with
/// an upcaster) without breaking them. Events without a contract stay inside.
public struct IntegrationContract: Sendable, Hashable {
    public enum Kind: String, Sendable { case integrationEvent, workMessage }

    public var eventType: String
    public var exchange: String
    public var routingKey: String
    public var contractVersion: Int
    public var kind: Kind

    public init(eventType: String, exchange: String, routingKey: String, contractVersion: Int = 1, kind: Kind = .integrationEvent) {
        self.eventType = eventType
        self.exchange = exchange
        self.routingKey = routingKey
        self.contractVersion = contractVersion
        self.kind = kind
    }

    /// The topic exchange of integration events.
    public static let eventsExchange = "events"
}

/// Every contract, by stored event type.
public struct IntegrationContracts: Sendable {
    public let byEventType: [String: IntegrationContract]

    public init(_ contracts: [IntegrationContract]) {
        byEventType = Dictionary(uniqueKeysWithValues: contracts.map { ($0.eventType, $0) })
    }

    /// The direct exchanges of work messages, whose queues workers consume.
    public var workExchanges: [String] {
        Set(byEventType.values.filter { $0.kind == .workMessage }.map(\.exchange)).sorted()
    }
}

/// The body of a published message: the event in its current shape, with its identity and
/// causal metadata. `event_id` is also the AMQP message id.
public struct IntegrationMessage: Codable, Sendable, Equatable {
    public var eventID: UUID
    public var eventType: String
    public var contractVersion: Int
    public var streamID: String
    public var streamVersion: Int64
    public var occurredAt: Date
    public var correlationID: String?
    public var causationID: String?
    public var tenantID: String?
    public var data: JSONValue

    public init(
        eventID: UUID, eventType: String, contractVersion: Int, streamID: String, streamVersion: Int64, occurredAt: Date,
        correlationID: String?, causationID: String?, tenantID: String?, data: JSONValue
    ) {
        self.eventID = eventID
        self.eventType = eventType
        self.contractVersion = contractVersion
        self.streamID = streamID
        self.streamVersion = streamVersion
        self.occurredAt = occurredAt
        self.correlationID = correlationID
        self.causationID = causationID
        self.tenantID = tenantID
        self.data = data
    }

    enum CodingKeys: String, CodingKey {
        case eventID = "eventId"
        case correlationID = "correlationId"
        case causationID = "causationId"
        case tenantID = "tenantId"
        case eventType, contractVersion, streamID = "streamId", streamVersion, occurredAt, data
    }
}

extension IntegrationMessage {
    /// The message body with `data` spliced in as the already-encoded JSON it is, so publishing
    /// never parses and re-encodes a payload. Decodes as an `IntegrationMessage`.
    public static func body(
        eventID: UUID, eventType: String, contractVersion: Int, streamID: String, streamVersion: Int64, occurredAt: Date,
        correlationID: String?, causationID: String?, tenantID: String?, rawData: Data
    ) throws -> Data {
        let envelope = IntegrationMessage(
            eventID: eventID, eventType: eventType, contractVersion: contractVersion, streamID: streamID,
            streamVersion: streamVersion, occurredAt: occurredAt, correlationID: correlationID, causationID: causationID,
            tenantID: tenantID, data: .null)
        var body = try EventCoding.encode(envelope)
        // The envelope encodes data as "data":null; that exact byte sequence can only be the key
        // (quotes inside string values are escaped), so it is replaced with the payload.
        guard let range = body.range(of: Data(#""data":null"#.utf8)) else { return body }
        body.replaceSubrange(range, with: Data(#""data":"#.utf8) + rawData)
        return body
    }
}
