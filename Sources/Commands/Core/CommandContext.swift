import Events
import Foundation

/// Everything a command carries besides its own fields: who sent it, under which id, in which
/// flow, and the time it is handled at (deciders never read a clock).
public struct CommandContext: Sendable {
    /// From the `Idempotency-Key` header, or generated. Event ids are derived from it.
    public var commandID: String
    public var userID: String?
    public var tenantID: String?
    public var correlationID: String?
    public var causationID: String?
    public var now: Date

    public init(
        commandID: String = UUID.random().uuidString.lowercased(), userID: String? = nil, tenantID: String? = nil,
        correlationID: String? = nil, causationID: String? = nil, now: Date = Date()
    ) {
        self.commandID = commandID
        self.userID = userID
        self.tenantID = tenantID
        self.correlationID = correlationID
        self.causationID = causationID
        self.now = now
    }

    /// The id of the command's `index`th event. Scoped by user and tenant, so two users who pick
    /// the same idempotency key never collide.
    public func eventID(_ index: Int) -> UUID {
        DeterministicID.v5(
            namespace: DeterministicID.eventNamespace,
            name: "\(tenantID ?? "")/\(userID ?? "")/\(commandID)/\(index)")
    }

    public var metadata: EventMetadata {
        EventMetadata(
            correlationID: correlationID ?? commandID, causationID: causationID ?? commandID,
            commandID: commandID, userID: userID, tenantID: tenantID)
    }
}
