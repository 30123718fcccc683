import Foundation

/// An event as the store holds it: payload as stored (upcast on decode, never rewritten).
public struct RecordedEvent: Sendable, Hashable {
    public var streamID: String
    /// 1 for a stream's first event.
    public var streamVersion: Int64
    public var checkpoint: Checkpoint
    public var eventID: UUID
    public var eventType: String
    public var schemaVersion: Int
    public var data: Data
    public var metadata: EventMetadata
    public var recordedAt: Date

    public init(
        streamID: String, streamVersion: Int64, checkpoint: Checkpoint, eventID: UUID, eventType: String,
        schemaVersion: Int, data: Data, metadata: EventMetadata, recordedAt: Date
    ) {
        self.streamID = streamID
        self.streamVersion = streamVersion
        self.checkpoint = checkpoint
        self.eventID = eventID
        self.eventType = eventType
        self.schemaVersion = schemaVersion
        self.data = data
        self.metadata = metadata
        self.recordedAt = recordedAt
    }

    /// The global position (the identity column); unique, but not the read order.
    public var position: Int64 { checkpoint.position }
}
