import Commands
import Foundation
import Logging
import PostgresNIO

/// Snapshots in their own table, keyed by stream and version. Only the newest is kept.
public struct PostgresSnapshotStore: SnapshotStore {
    public let client: PostgresClient
    public let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Every command's load asks for this first.
    enum Latest: PreparedSQL {
        static let sql = "SELECT stream_version, state_version, data::text FROM snapshots WHERE stream_id = $1 ORDER BY stream_version DESC LIMIT 1"
    }

    public func latest(_ streamID: String) async throws -> Snapshot? {
        let rows = try await client.execute(Prepared<Latest> { $0.append(streamID) }, logger: logger)
        for try await (version, stateVersion, data) in rows.decode((Int64, Int32, String).self) {
            return Snapshot(streamID: streamID, streamVersion: version, stateVersion: Int(stateVersion), data: PostgresText.decodeJSON(Data(data.utf8)))
        }
        return nil
    }

    public func save(_ snapshot: Snapshot) async throws {
        let data = String(decoding: PostgresText.encodeJSON(snapshot.data), as: UTF8.self)
        _ = try await client.query("""
            WITH saved AS (
                INSERT INTO snapshots (stream_id, stream_version, state_version, data)
                VALUES (\(snapshot.streamID), \(snapshot.streamVersion), \(Int32(snapshot.stateVersion)), \(data)::jsonb)
                ON CONFLICT DO NOTHING)
            DELETE FROM snapshots WHERE stream_id = \(snapshot.streamID) AND stream_version < \(snapshot.streamVersion)
            """, logger: logger)
    }
}
