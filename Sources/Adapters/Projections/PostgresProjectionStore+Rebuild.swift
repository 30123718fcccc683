import Commands
import Events
import Foundation
import PostgresNIO
import Projections

/// How far a rebuild has come, for a progress bar.
public struct RebuildProgress: Sendable {
    public var events: Int
    public var total: Int
    public var elapsed: Duration
}

extension PostgresProjectionStore {
    /// Builds the next generation of the read model from position zero beside the live one, then
    /// swaps it in atomically. Reads go on against the current generation throughout and see the
    /// new one only once it is complete: the swap is one transaction that locks the checkpoint
    /// row (the live runner waits), tops the new generation up to the live checkpoint, points the
    /// views at it and records the generation. If the rebuild got further than the live runner,
    /// the checkpoint moves forward and the runner, finding it moved, reloads it.
    public func rebuild(
        events: any EventStore, batchSize: Int? = nil, progress: @Sendable (RebuildProgress) -> Void = { _ in }
    ) async throws -> (generation: Int, events: Int) {
        // Pages of 5,000 for a fold (decoded before each page's transaction), 2,000 otherwise.
        let batchSize = max(1, batchSize ?? projection.batchSize ?? (projection is any FoldingPostgresProjection ? 5_000 : 2_000))
        try await prepareStorage()
        let clock = ContinuousClock()
        let started = clock.now
        let total = try await countEvents()
        let next = try await withConnectionReturning { connection in
            try await Self.generation(of: projection.name, on: connection, logger: logger) + 1
        }
        let tables = physicalNames(generation: next)
        try await transaction { connection in
            for physical in tables.values {
                _ = try await connection.query(PostgresQuery(unsafeSQL: "DROP TABLE IF EXISTS \(physical)"), logger: logger)
            }
            try await createTables(generation: next, on: connection, pointViews: false)
        }
        var checkpoint = Checkpoint.start
        var done = 0
        let known = FoldKeys()
        // Catch up outside any lock, a page ahead: the next page is read and decoded while this
        // one is written (decoding is most of a page's work, writing most of the server's).
        @Sendable func page(after position: Checkpoint) async throws -> ([RecordedEvent], PreparedWrites) {
            let batch = try await events.readAll(after: position, limit: batchSize)
            return (batch, try await prepareSkippingRefused(batch))
        }
        var (batch, prepared) = try await page(after: checkpoint)
        while let last = batch.last {
            async let next = page(after: last.checkpoint)
            try await transaction { connection in try await write(prepared, tables: tables, on: connection, known: known) }
            checkpoint = last.checkpoint
            done += batch.count
            progress(RebuildProgress(events: done, total: max(total, done), elapsed: started.duration(to: clock.now)))
            (batch, prepared) = try await next
        }
        // Swap, with the live runner paused on the checkpoint row.
        let final = checkpoint
        try await transaction { connection in
            var live = Checkpoint.start
            for try await (tx, position) in try await connection.query(
                "SELECT transaction_id::text, position FROM projector_checkpoints WHERE projector = \(projection.name) FOR UPDATE",
                logger: logger
            ).decode((String, Int64).self) {
                live = Checkpoint(transactionID: UInt64(tx) ?? 0, position: position)
            }
            var position = final
            while position < live {
                let batch = try await events.readAll(after: position, limit: batchSize).filter { $0.checkpoint <= live }
                guard let last = batch.last else { break }
                try await write(try await prepareSkippingRefused(batch), tables: tables, on: connection, known: known)
                position = last.checkpoint
            }
            for table in projection.tables {
                // Drop and create, not replace: the new generation may have other columns. Views
                // over this one (Text-to-SQL's chronicle_data) go with it; their module makes
                // them again before it next reads them.
                _ = try await connection.query(PostgresQuery(unsafeSQL: "DROP VIEW IF EXISTS \(table.name) CASCADE"), logger: logger)
                _ = try await connection.query(
                    PostgresQuery(unsafeSQL: "CREATE VIEW \(table.name) AS SELECT * FROM \(tables[table.name]!)"), logger: logger)
            }
            _ = try await connection.query(
                "UPDATE projector_checkpoints SET generation = \(Int32(next)), schema_hash = \(schemaHash) WHERE projector = \(projection.name)",
                logger: logger)
            if position > live { try await table.move(to: position, on: connection) }
        }
        // The old generation is no longer read: drop it.
        try await transaction { connection in
            for table in projection.tables {
                _ = try await connection.query(PostgresQuery(unsafeSQL: "DROP TABLE IF EXISTS \(table.name)_g\(next - 1)"), logger: logger)
            }
        }
        return (next, done)
    }

    private func countEvents() async throws -> Int {
        for try await count in try await client.query("SELECT count(*) FROM events", logger: logger).decode(Int64.self) {
            return Int(count)
        }
        return 0
    }

    private func withConnectionReturning<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await client.withConnection(body)
    }

    /// Rebuilds the read model if its tables' definitions changed since it was built (or were
    /// built before fingerprints were kept); a new projector just records its fingerprint.
    public func upgradeIfNeeded(events: any EventStore) async throws -> Bool {
        var stored: String?
        var checkpoint = Checkpoint.start
        for try await (hash, tx, position) in try await client.query(
            "SELECT schema_hash, transaction_id::text AS tx, position FROM projector_checkpoints WHERE projector = \(projection.name)",
            logger: logger
        ).decode((String?, String, Int64).self) {
            stored = hash
            checkpoint = Checkpoint(transactionID: UInt64(tx) ?? 0, position: position)
        }
        if stored == schemaHash { return false }
        if checkpoint == .start {
            // Nothing applied yet: the tables hold nothing to keep, so they are made anew in place.
            try await transaction { connection in
                let generation = try await Self.generation(of: projection.name, on: connection, logger: logger)
                for (name, physical) in physicalNames(generation: generation) {
                    _ = try await connection.query(PostgresQuery(unsafeSQL: "DROP VIEW IF EXISTS \(name) CASCADE"), logger: logger)
                    _ = try await connection.query(PostgresQuery(unsafeSQL: "DROP TABLE IF EXISTS \(physical)"), logger: logger)
                }
                try await createTables(generation: generation, on: connection, pointViews: true)
                _ = try await connection.query(
                    "UPDATE projector_checkpoints SET schema_hash = \(schemaHash) WHERE projector = \(projection.name)", logger: logger)
            }
            return false
        }
        logger.notice("read model shape changed; rebuilding", metadata: ["es.projector": "\(projection.name)"])
        _ = try await rebuild(events: events)
        return true
    }
}
