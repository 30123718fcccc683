import Commands
import Foundation
import Logging
import PostgresNIO

/// Password hashes in `user_credentials` (migration 0004).
public struct PostgresCredentialStore: CredentialStore {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func passwordHash(of userID: UUID) async throws -> String? {
        let rows = try await client.query("SELECT password_hash FROM user_credentials WHERE user_id = \(userID)", logger: logger)
        for try await hash in rows.decode(String.self) { return hash }
        return nil
    }

    public func setPasswordHash(_ hash: String, of userID: UUID) async throws {
        _ = try await client.query("""
            INSERT INTO user_credentials (user_id, password_hash) VALUES (\(userID), \(hash))
            ON CONFLICT (user_id) DO UPDATE SET password_hash = excluded.password_hash, updated_at = now()
            """, logger: logger).collect()
    }
}
