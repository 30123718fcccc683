import Events
import Foundation
import Logging
import PostgresNIO
import Projections

/// `projector_checkpoints`, shared by every store whose checkpoint lives in Postgres (Postgres
/// projections and the relay): one place for reading it, and for the fenced, compare-and-set move.
struct ProjectorCheckpointTable {
    let projector: String
    let client: PostgresClient
    let logger: Logger

    func ensureRow() async throws {
        _ = try await client.query(
            "INSERT INTO projector_checkpoints (projector) VALUES (\(projector)) ON CONFLICT DO NOTHING", logger: logger
        ).collect()
    }

    func read() async throws -> Checkpoint {
        let rows = try await client.query(
            "SELECT transaction_id::text, position FROM projector_checkpoints WHERE projector = \(projector)", logger: logger)
        for try await (tx, position) in rows.decode((String, Int64).self) {
            return Checkpoint(transactionID: UInt64(tx) ?? 0, position: position)
        }
        return .start
    }

    /// One transaction on one pooled connection. Its own BEGIN/COMMIT rather than
    /// `withTransaction`, which wraps the closure's errors, so `fenced` reaches the runner as is.
    func transaction(_ body: (PostgresConnection) async throws -> Void) async throws {
        try await client.withConnection { connection in
            _ = try await connection.query("BEGIN", logger: logger)
            do {
                try await body(connection)
                _ = try await connection.query("COMMIT", logger: logger)
            } catch {
                // Roll back even if this task was cancelled (a cancelled query may never be
                // sent): an unstructured task does not inherit the cancellation. A connection
                // that went back to the pool inside a transaction would hold the server's xmin
                // horizon, and with it every reader of the log, until someone reused it.
                let logger = self.logger
                await Task { _ = try? await connection.query("ROLLBACK", logger: logger) }.value
                throw error
            }
        }
    }

    /// Every batch of every runner runs these two.
    enum Lock: PreparedSQL {
        static let sql = "SELECT epoch, generation, transaction_id::text, position FROM projector_checkpoints WHERE projector = $1 FOR UPDATE"
    }

    enum Move: PreparedSQL {
        static let sql = "UPDATE projector_checkpoints SET transaction_id = $1::xid8, position = $2, updated_at = now() WHERE projector = $3"
    }

    /// Locks the row for the transaction and returns the generation and stored checkpoint, or
    /// throws `fenced` when another holder's epoch is newer.
    func lock(epoch: Int64, on connection: PostgresConnection) async throws -> (generation: Int, checkpoint: Checkpoint) {
        let rows = try await connection.execute(Prepared<Lock> { $0.append(projector) }, logger: logger)
        for try await (current, generation, tx, position) in rows.decode((Int64, Int32, String, Int64).self) {
            guard current == epoch else { throw ProjectionError.fenced(projector: projector) }
            return (Int(generation), Checkpoint(transactionID: UInt64(tx) ?? 0, position: position))
        }
        throw ProjectionError.fenced(projector: projector)
    }

    /// Inside `transaction`: locks the row, skips a batch applied before (returns false), refuses
    /// one that does not follow the stored checkpoint, runs `write` and moves the checkpoint.
    func advance(
        after: Checkpoint, through: Checkpoint, epoch: Int64, on connection: PostgresConnection,
        _ write: (_ generation: Int) async throws -> Void
    ) async throws {
        let (generation, current) = try await lock(epoch: epoch, on: connection)
        if through <= current { return }
        guard current == after else { throw ProjectionError.checkpointMoved(projector: projector) }
        try await write(generation)
        try await move(to: through, on: connection)
    }

    func move(to through: Checkpoint, on connection: PostgresConnection) async throws {
        for try await _ in try await connection.execute(Prepared<Move> {
            $0.append(String(through.transactionID))
            $0.append(through.position)
            $0.append(projector)
        }, logger: logger) {}
    }
}
