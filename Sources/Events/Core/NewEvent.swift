import Foundation

/// An event about to be appended: its payload already encoded under its stable type name.
public struct NewEvent: Sendable, Hashable {
    public var eventID: UUID
    public var eventType: String
    public var schemaVersion: Int
    public var data: Data
    public var metadata: EventMetadata

    public init(eventID: UUID, eventType: String, schemaVersion: Int, data: Data, metadata: EventMetadata) {
        self.eventID = eventID
        self.eventType = eventType
        self.schemaVersion = schemaVersion
        self.data = data
        self.metadata = metadata
    }

    /// Encodes a domain event under its declared type name and current schema version.
    public init<E: DomainEvent>(_ event: E, id: UUID, metadata: EventMetadata) throws {
        self.init(
            eventID: id, eventType: E.eventType, schemaVersion: E.schemaVersion,
            data: try EventCoding.encode(event), metadata: metadata)
    }
}
