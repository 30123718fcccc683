import Events
import Foundation
import Logging
import PostgresNIO
import Projections

/// A Postgres read model: each batch's rows, parked records and checkpoint change in one
/// transaction, which first locks the projector's checkpoint row and checks the holder's epoch.
/// Tables live per generation (`<name>_g<N>`) behind a view named `<name>`, so a rebuild can fill
/// the next generation while reads go on against the current one.
public struct PostgresProjectionStore<P: PostgresProjection>: ProjectionStore {
    public let projection: P
    let client: PostgresClient
    let logger: Logger

    public init(projection: P, client: PostgresClient, logger: Logger) {
        self.projection = projection
        self.client = client
        self.logger = logger
    }

    public var projectorName: String { projection.name }

    var table: ProjectorCheckpointTable { ProjectorCheckpointTable(projector: projection.name, client: client, logger: logger) }

    /// A folded projection's events are applied by the fold, per batch (`RowFolder`): no
    /// statements per event, and an event the fold refuses fails its batch, which the runner then
    /// applies one event at a time to park it.
    public func writes(for event: RecordedEvent) throws -> [SQLStatement] {
        projection is any FoldingPostgresProjection ? [] : try projection.statements(for: event)
    }

    /// Applies events' writes to the generation's tables: through the fold for a folded
    /// projection, else their statements one by one.
    func write(_ events: [(RecordedEvent, [SQLStatement])], tables: [String: String], on connection: PostgresConnection) async throws {
        if let folding = projection as? any FoldingPostgresProjection {
            try await fold(folding, events.map(\.0), tables: tables, on: connection, known: nil)
            return
        }
        for (_, statements) in events {
            for statement in statements {
                _ = try await connection.query(statement.query(tables: tables), logger: logger)
            }
        }
    }

    func fold<F: FoldingPostgresProjection>(
        _ folding: F, _ events: [RecordedEvent], tables: [String: String], on connection: PostgresConnection, known: FoldKeys?
    ) async throws {
        try await RowFolder(projection: folding, logger: logger).apply(events, tables: tables, on: connection, known: known)
    }

    public func prepareStorage() async throws {
        try await transaction { connection in
            _ = try await connection.query(
                "INSERT INTO projector_checkpoints (projector) VALUES (\(projection.name)) ON CONFLICT DO NOTHING", logger: logger)
            let generation = try await Self.generation(of: projection.name, on: connection, logger: logger)
            try await createTables(generation: generation, on: connection, pointViews: true)
        }
    }

    public func checkpoint() async throws -> Checkpoint {
        try await table.read()
    }

    public func apply(_ steps: [ProjectionStep<[SQLStatement]>], after: Checkpoint, through: Checkpoint, epoch: Int64) async throws {
        try await transaction { connection in
            try await table.advance(after: after, through: through, epoch: epoch, on: connection) { generation in
                let applied = steps.compactMap { step -> (RecordedEvent, [SQLStatement])? in
                    if case .apply(let event, let statements) = step { (event, statements) } else { nil }
                }
                try await write(applied, tables: physicalNames(generation: generation), on: connection)
                try await PostgresParkedEventStore.insert(steps, projector: projection.name, on: connection, logger: logger)
            }
        }
    }

    public func applyReleased(_ events: [(RecordedEvent, [SQLStatement])], epoch: Int64) async throws {
        try await transaction { connection in
            let (generation, _) = try await table.lock(epoch: epoch, on: connection)
            try await write(events, tables: physicalNames(generation: generation), on: connection)
            _ = try await connection.query(
                "DELETE FROM parked_events WHERE projector = \(projection.name) AND event_id = ANY(\(events.map(\.0.eventID)))",
                logger: logger)
        }
    }

    func transaction(_ body: (PostgresConnection) async throws -> Void) async throws {
        try await table.transaction(body)
    }

    /// SQLSTATE classes 22 (data exception: out of range, invalid text, ...) and 23 (integrity
    /// constraint violation): the statements' values are at fault, not the server or the lease.
    /// Likewise an event a fold cannot apply.
    public func refusedData(_ error: any Error) -> String? {
        if let refused = error as? FoldRefused { return "the read model refused the event: \(refused.description)" }
        guard let state = PostgresErrors.sqlState(error), state.hasPrefix("22") || state.hasPrefix("23") else { return nil }
        return "Postgres refused the read model's writes: \(PostgresErrors.summary(error)) (SQLSTATE \(state))"
    }

    /// A fingerprint of the tables' definitions (FNV-1a, 64 bits): it changes when they do.
    public var schemaHash: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in projection.tables.map({ "\($0.name)\n\($0.ddl)" }).joined(separator: "\n--\n").utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        return String(hash, radix: 16)
    }

    func physicalNames(generation: Int) -> [String: String] {
        Dictionary(uniqueKeysWithValues: projection.tables.map { ($0.name, "\($0.name)_g\(generation)") })
    }

    /// Creates the generation's tables if missing, and (for the active generation) the views.
    func createTables(generation: Int, on connection: PostgresConnection, pointViews: Bool) async throws {
        let names = physicalNames(generation: generation)
        for table in projection.tables {
            let physical = names[table.name]!
            let ddl = table.ddl.replacingOccurrences(of: "{\(table.name)}", with: physical)
            for statement in SQLScript.statements(ddl) {
                _ = try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
            if pointViews {
                _ = try await connection.query(
                    PostgresQuery(unsafeSQL: "CREATE OR REPLACE VIEW \(table.name) AS SELECT * FROM \(physical)"), logger: logger)
            }
        }
    }

    static func generation(of projector: String, on connection: PostgresConnection, logger: Logger) async throws -> Int {
        for try await generation in try await connection.query(
            "SELECT generation FROM projector_checkpoints WHERE projector = \(projector)", logger: logger
        ).decode(Int32.self) {
            return Int(generation)
        }
        return 1
    }
}
