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

    public func writes(for event: RecordedEvent) throws -> [SQLStatement] {
        try projection.statements(for: event)
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
                let tables = physicalNames(generation: generation)
                for case .apply(_, let statements) in steps {
                    for statement in statements {
                        _ = try await connection.query(statement.query(tables: tables), logger: logger)
                    }
                }
                try await PostgresParkedEventStore.insert(steps, projector: projection.name, on: connection, logger: logger)
            }
        }
    }

    public func applyReleased(_ events: [(RecordedEvent, [SQLStatement])], epoch: Int64) async throws {
        try await transaction { connection in
            let (generation, _) = try await table.lock(epoch: epoch, on: connection)
            let tables = physicalNames(generation: generation)
            for (_, statements) in events {
                for statement in statements {
                    _ = try await connection.query(statement.query(tables: tables), logger: logger)
                }
            }
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
    public func refusedData(_ error: any Error) -> String? {
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
