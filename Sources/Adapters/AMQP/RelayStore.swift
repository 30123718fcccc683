import Events
import Foundation
import Logging
import PostgresNIO
import Projections

/// The relay as a projection store: the events table is the outbox, and "applying" a batch means
/// publishing its integration events with publisher confirms and only then moving the checkpoint
/// (fenced by the lease's epoch). A crash between the two republishes the batch: delivery is at
/// least once, and the message id is the event id, so consumers drop repeats.
public struct RelayStore: ProjectionStore {
    public static let name = "relay"
    let publisher: AMQPPublisher
    let contracts: IntegrationContracts
    let registry: EventRegistry
    let client: PostgresClient
    let logger: Logger

    public init(publisher: AMQPPublisher, contracts: IntegrationContracts = .chronicle, registry: EventRegistry = .chronicle, client: PostgresClient, logger: Logger) {
        self.publisher = publisher
        self.contracts = contracts
        self.registry = registry
        self.client = client
        self.logger = logger
    }

    public var projectorName: String { Self.name }

    /// The exchanges every publisher and consumer of Chronicle declares.
    public static let topology = AMQPTopology(
        exchanges: [(IntegrationContract.eventsExchange, "topic")] + IntegrationContract.workExchanges.map { ($0, "direct") })

    public func prepareStorage() async throws {
        _ = try await client.query(
            "INSERT INTO projector_checkpoints (projector) VALUES (\(Self.name)) ON CONFLICT DO NOTHING", logger: logger
        ).collect()
    }

    public func checkpoint() async throws -> Checkpoint {
        let rows = try await client.query(
            "SELECT transaction_id::text, position FROM projector_checkpoints WHERE projector = \(Self.name)", logger: logger)
        for try await (tx, position) in rows.decode((String, Int64).self) {
            return Checkpoint(transactionID: UInt64(tx) ?? 0, position: position)
        }
        return .start
    }

    public func writes(for event: RecordedEvent) throws -> [OutgoingMessage] {
        guard let contract = contracts.byEventType[event.eventType] else { return [] }
        let current = try registry.upcast(type: event.eventType, version: event.schemaVersion, data: event.data)
        let body = try IntegrationMessage.body(
            eventID: event.eventID, eventType: event.eventType, contractVersion: contract.contractVersion,
            streamID: event.streamID, streamVersion: event.streamVersion, occurredAt: event.recordedAt,
            correlationID: event.metadata.correlationID, causationID: event.metadata.causationID,
            tenantID: event.metadata.tenantID, rawData: current)
        return [OutgoingMessage(
            exchange: contract.exchange, routingKey: contract.routingKey, messageID: event.eventID.uuidString.lowercased(),
            type: event.eventType, body: body)]
    }

    public func apply(_ steps: [ProjectionStep<[OutgoingMessage]>], after: Checkpoint, through: Checkpoint, epoch: Int64) async throws {
        let messages = steps.flatMap { step -> [OutgoingMessage] in
            if case .apply(_, let messages) = step { return messages }
            return []
        }
        try await publisher.publish(messages)
        try await client.withConnection { connection in
            _ = try await connection.query("BEGIN", logger: logger)
            do {
                try await PostgresParkedEventStore.insert(steps, projector: Self.name, on: connection, logger: logger)
                let moved = try await connection.query("""
                    UPDATE projector_checkpoints
                    SET transaction_id = \(String(through.transactionID))::xid8, position = \(through.position), updated_at = now()
                    WHERE projector = \(Self.name) AND epoch = \(epoch)
                      AND (transaction_id, position) < (\(String(through.transactionID))::xid8, \(through.position))
                    RETURNING epoch
                    """, logger: logger).collect()
                if moved.isEmpty, try await currentEpoch(on: connection) != epoch { throw ProjectionError.fenced(projector: Self.name) }
                _ = try await connection.query("COMMIT", logger: logger)
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
        }
    }

    public func applyReleased(_ events: [(RecordedEvent, [OutgoingMessage])], epoch: Int64) async throws {
        try await publisher.publish(events.flatMap(\.1))
        _ = try await client.query(
            "DELETE FROM parked_events WHERE projector = \(Self.name) AND event_id = ANY(\(events.map(\.0.eventID)))", logger: logger
        ).collect()
    }

    private func currentEpoch(on connection: PostgresConnection) async throws -> Int64 {
        for try await epoch in try await connection.query(
            "SELECT epoch FROM projector_checkpoints WHERE projector = \(Self.name)", logger: logger
        ).decode(Int64.self) {
            return epoch
        }
        return -1
    }
}
