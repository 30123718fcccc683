import Foundation

/// Who and what caused an event. Stored beside every event; never part of the domain payload.
public struct EventMetadata: Sendable, Hashable, Codable {
    /// The request or flow this event belongs to (the `X-Request-ID` of the command that began it).
    public var correlationID: String?
    /// The message that directly caused this event: a command id or an upstream event id.
    public var causationID: String?
    /// The command that appended this event; event ids are derived from it.
    public var commandID: String?
    public var userID: String?
    public var tenantID: String?

    public init(
        correlationID: String? = nil, causationID: String? = nil, commandID: String? = nil,
        userID: String? = nil, tenantID: String? = nil
    ) {
        self.correlationID = correlationID
        self.causationID = causationID
        self.commandID = commandID
        self.userID = userID
        self.tenantID = tenantID
    }

    enum CodingKeys: String, CodingKey {
        case correlationID = "correlationId"
        case causationID = "causationId"
        case commandID = "commandId"
        case userID = "userId"
        case tenantID = "tenantId"
    }
}
