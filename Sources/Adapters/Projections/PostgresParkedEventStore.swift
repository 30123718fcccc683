import Events
import Foundation
import Logging
import PostgresNIO
import Projections

/// Parked events in `parked_events` (migration 0002).
public struct PostgresParkedEventStore: ParkedEventStore {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    static let columns = """
        projector, event_id, stream_id, stream_version, transaction_id::text AS transaction_text, global_position,
        error, attempts, held_behind, status, parked_at
        """

    public func parked(projector: String?) async throws -> [ParkedEvent] {
        if let projector {
            return try await fetch("SELECT \(unescaped: Self.columns) FROM parked_events WHERE projector = \(projector) ORDER BY parked_events.transaction_id, parked_events.global_position")
        }
        return try await fetch("SELECT \(unescaped: Self.columns) FROM parked_events ORDER BY projector, parked_events.transaction_id, parked_events.global_position")
    }

    public func request(_ action: ParkedEvent.Action, projector: String, eventID: UUID) async throws -> Bool {
        let rows = try await client.query("""
            UPDATE parked_events SET status = \(action.rawValue)
            WHERE projector = \(projector) AND event_id = \(eventID) AND held_behind IS NULL
            RETURNING event_id
            """, logger: logger).collect()
        if !rows.isEmpty { _ = try? await client.query("SELECT pg_notify('chronicle_events', '')", logger: logger).collect() }
        return !rows.isEmpty
    }

    public func heldStreams(projector: String) async throws -> [String: UUID] {
        var held: [String: UUID] = [:]
        let rows = try await client.query(
            "SELECT stream_id, event_id FROM parked_events WHERE projector = \(projector) AND held_behind IS NULL", logger: logger)
        for try await (stream, event) in rows.decode((String, UUID).self) { held[stream] = event }
        return held
    }

    /// A runner asks before every batch.
    enum Requested: PreparedSQL {
        static let sql = """
            SELECT \(columns) FROM parked_events WHERE projector = $1 AND held_behind IS NULL AND status <> 'parked'
            ORDER BY parked_events.transaction_id, parked_events.global_position
            """
    }

    public func requested(projector: String) async throws -> [ParkedEvent] {
        try await fetch(client.execute(Prepared<Requested> { $0.append(projector) }, logger: logger))
    }

    public func heldBehind(projector: String, eventID: UUID) async throws -> [ParkedEvent] {
        try await fetch("""
            SELECT \(unescaped: Self.columns) FROM parked_events
            WHERE projector = \(projector) AND held_behind = \(eventID)
            ORDER BY parked_events.stream_version
            """)
    }

    public func repark(projector: String, eventID: UUID, error: String, previous: UUID) async throws {
        try await client.withTransaction(logger: logger) { connection in
            _ = try await connection.query("""
                UPDATE parked_events SET held_behind = NULL, status = 'parked', error = \(error), attempts = attempts + 1
                WHERE projector = \(projector) AND event_id = \(eventID)
                """, logger: logger)
            _ = try await connection.query("""
                UPDATE parked_events SET held_behind = \(eventID)
                WHERE projector = \(projector) AND held_behind = \(previous) AND event_id <> \(eventID)
                """, logger: logger)
            // The previous blocker was applied, so its record goes; unless the one that failed again
            // is the previous blocker itself (a retried event refused again), which stays parked.
            if previous != eventID {
                _ = try await connection.query(
                    "DELETE FROM parked_events WHERE projector = \(projector) AND event_id = \(previous)", logger: logger)
            }
        }
    }

    public func forget(projector: String, eventIDs: [UUID]) async throws {
        _ = try await client.query(
            "DELETE FROM parked_events WHERE projector = \(projector) AND event_id = ANY(\(eventIDs))", logger: logger
        ).collect()
    }

    /// Records parked and held events; an event parked before stays as it was.
    static func insert<W>(_ steps: [ProjectionStep<W>], projector: String, on connection: PostgresConnection, logger: Logger) async throws {
        for step in steps {
            let (event, error, attempts, behind): (RecordedEvent, String, Int, UUID?)
            switch step {
            case .apply: continue
            case .park(let e, let message, let tries): (event, error, attempts, behind) = (e, message, tries, nil)
            case .hold(let e, let blocker): (event, error, attempts, behind) = (e, "held behind \(blocker)", 0, blocker)
            }
            _ = try await connection.query("""
                INSERT INTO parked_events (projector, event_id, stream_id, stream_version, global_position, transaction_id, error, attempts, held_behind)
                VALUES (\(projector), \(event.eventID), \(event.streamID), \(event.streamVersion), \(event.position),
                        \(String(event.checkpoint.transactionID))::xid8, \(error), \(attempts), \(behind))
                ON CONFLICT (projector, event_id) DO NOTHING
                """, logger: logger)
        }
    }

    private func fetch(_ query: PostgresQuery) async throws -> [ParkedEvent] {
        try await fetch(client.query(query, logger: logger))
    }

    private func fetch<Rows: AsyncSequence>(_ rows: Rows) async throws -> [ParkedEvent] where Rows.Element == PostgresRow {
        var result: [ParkedEvent] = []
        for try await (projector, id, stream, version, tx, position, error, attempts, behind, status, parkedAt) in rows.decode(
            (String, UUID, String, Int64, String, Int64, String, Int32, UUID?, String, Date).self)
        {
            result.append(ParkedEvent(
                projector: projector, eventID: id, streamID: stream, streamVersion: version,
                checkpoint: Checkpoint(transactionID: UInt64(tx) ?? 0, position: position), error: error,
                attempts: Int(attempts), heldBehind: behind, status: status, parkedAt: parkedAt))
        }
        return result
    }
}
