import Foundation
import Logging
import PostgresNIO
import Projections
import Workers

/// The workers' inbox in `processed_messages` (migration 0002).
public struct PostgresInbox: Inbox {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func contains(_ messageID: String, consumer: String) async throws -> Bool {
        let rows = try await client.query(
            "SELECT 1 FROM processed_messages WHERE consumer = \(consumer) AND message_id = \(messageID)", logger: logger).collect()
        return !rows.isEmpty
    }

    public func record(_ messageID: String, consumer: String) async throws {
        _ = try await client.query(
            "INSERT INTO processed_messages (consumer, message_id) VALUES (\(consumer), \(messageID)) ON CONFLICT DO NOTHING",
            logger: logger).collect()
    }
}
