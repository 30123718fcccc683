import Foundation
import Logging
import PostgresNIO
import Projections

/// Leases on Postgres: a session advisory lock held on a dedicated connection (released by the
/// server when the holder's connection dies, so a killed process frees it), plus a fencing epoch
/// bumped on every acquisition. The connection is pinged while held; if it fails, the holder's
/// work is cancelled, and its stale epoch keeps it from writing in the meantime.
public struct PostgresLeaseProvider: LeaseProvider {
    let client: PostgresClient
    let logger: Logger
    let keepAlive: Duration

    public init(client: PostgresClient, logger: Logger, keepAlive: Duration = .seconds(1)) {
        self.client = client
        self.logger = logger
        self.keepAlive = keepAlive
    }

    public func withLease(_ name: String, _ body: @escaping @Sendable (Int64) async throws -> Void) async throws -> Bool {
        try await client.withConnection { connection in
            let key = "chronicle.lease.\(name)"
            var locked = false
            for try await got in try await connection.query(
                "SELECT pg_try_advisory_lock(hashtextextended(\(key), 0))", logger: logger
            ).decode(Bool.self) {
                locked = got
            }
            guard locked else { return false }
            do {
                var epoch: Int64 = 0
                for try await value in try await connection.query("""
                    INSERT INTO projector_checkpoints (projector, epoch) VALUES (\(name), 1)
                    ON CONFLICT (projector) DO UPDATE SET epoch = projector_checkpoints.epoch + 1, updated_at = now()
                    RETURNING epoch
                    """, logger: logger).decode(Int64.self)
                {
                    epoch = value
                }
                let leaseEpoch = epoch
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await body(leaseEpoch) }
                    group.addTask {
                        while true {
                            try await Task.sleep(for: keepAlive)
                            _ = try await connection.query("SELECT 1", logger: logger).collect()
                        }
                    }
                    defer { group.cancelAll() }
                    try await group.next()
                }
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(hashtextextended(\(key), 0))", logger: logger).collect()
                throw error
            }
            _ = try? await connection.query("SELECT pg_advisory_unlock(hashtextextended(\(key), 0))", logger: logger).collect()
            return true
        }
    }
}
