import Events
import Foundation

/// Analytics: events per UTC day and type, across every module (Postgres, `event_counts`).
/// Counting is not idempotent, which is the point: applied twice, an event shows up twice, so
/// this model is also what the crash and failover tests compare against a rebuild.
public struct EventCountsProjection: PostgresProjection {
    public let name = "event_counts"

    public init() {}

    public var tables: [ReadModelTable] {
        [ReadModelTable(name: "event_counts", ddl: """
            CREATE TABLE IF NOT EXISTS {event_counts} (
                day        date   NOT NULL,
                event_type text   NOT NULL,
                events     bigint NOT NULL,
                PRIMARY KEY (day, event_type)
            )
            """)]
    }

    public func statements(for event: RecordedEvent) throws -> [SQLStatement] {
        [SQLStatement("""
            INSERT INTO {event_counts} (day, event_type, events) VALUES (($1::timestamptz AT TIME ZONE 'UTC')::date, $2, 1)
            ON CONFLICT (day, event_type) DO UPDATE SET events = {event_counts}.events + 1
            """, [.timestamp(event.recordedAt), .text(event.eventType)])]
    }
}
