import Foundation
import Logging
import PostgresNIO
import Projections

/// Leases on Postgres: a session advisory lock held on a dedicated connection (released by the
/// server when the holder's connection dies, so a killed process frees it), plus a fencing epoch
/// bumped on every acquisition. While held, the lease is confirmed every `keepAlive`; if it is
/// lost, the holder's work is cancelled, and its stale epoch keeps it from writing meanwhile.
///
/// The confirmation never sends anything on the dedicated connection. PostgresNIO 1.33's
/// `PostgresConnection.query` on a connection the server has closed never returns and ignores
/// cancellation (it writes with `promise: nil` and waits on a promise nobody completes). The old
/// keep-alive `SELECT 1` hung that way after a Postgres restart, so the holder never noticed it had
/// lost the lock, and a runner whose work had failed waited on it for good (the fault suite found
/// both). Instead: the connection's own closed flag, and, through the pool, whether the lock's
/// session (backend pid and start time) still exists, which also catches a half-open socket.
public struct PostgresLeaseProvider: LeaseProvider {
    let client: PostgresClient
    let logger: Logger
    let keepAlive: Duration

    public init(client: PostgresClient, logger: Logger, keepAlive: Duration = .seconds(1)) {
        self.client = client
        self.logger = logger
        self.keepAlive = keepAlive
    }

    struct LeaseLost: Error, CustomStringConvertible {
        let projector: String
        var description: String { "the lease of \(projector) was lost (its session ended)" }
    }

    public func withLease(_ name: String, _ body: @escaping @Sendable (Int64) async throws -> Void) async throws -> Bool {
        try await client.withConnection { connection in
            let key = "chronicle.lease.\(name)"
            var session: (pid: Int32, started: String)?
            for try await (got, pid, started) in try await connection.query(
                "SELECT pg_try_advisory_lock(hashtextextended(\(key), 0)), pg_backend_pid(), pg_postmaster_start_time()::text", logger: logger
            ).decode((Bool, Int32, String).self) where got {
                session = (pid, started)
            }
            guard let session else { return false }
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
                            guard !connection.isClosed, try await sessionAlive(session) else { throw LeaseLost(projector: name) }
                        }
                    }
                    defer { group.cancelAll() }
                    try await group.next()
                }
            } catch {
                if !connection.isClosed {
                    _ = try? await connection.query("SELECT pg_advisory_unlock(hashtextextended(\(key), 0))", logger: logger).collect()
                }
                throw error
            }
            if !connection.isClosed {
                _ = try? await connection.query("SELECT pg_advisory_unlock(hashtextextended(\(key), 0))", logger: logger).collect()
            }
            return true
        }
    }

    /// Whether the lock's session is still the server's: same backend pid, and the server not
    /// restarted since (a restart ends every session; a pid may come back).
    func sessionAlive(_ session: (pid: Int32, started: String)) async throws -> Bool {
        let rows = try await client.query("""
            SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = \(session.pid)) AND pg_postmaster_start_time()::text = \(session.started)
            """, logger: logger)
        for try await alive in rows.decode(Bool.self) { return alive }
        return false
    }
}
