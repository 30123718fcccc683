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

    /// A folded batch is decoded before its transaction and written in a few statements, so it
    /// can be large; statements per event keep the transaction (and the readers it holds back)
    /// short.
    public var batchSize: Int { projection.batchSize ?? (projection is any FoldingPostgresProjection ? 2_000 : 500) }

    /// A folded projection's events are applied by the fold, per batch (`RowFolder`): no
    /// statements per event, and an event the fold refuses fails its batch, which the runner then
    /// applies one event at a time to park it.
    public func writes(for event: RecordedEvent) throws -> [SQLStatement] {
        projection is any FoldingPostgresProjection ? [] : try projection.statements(for: event)
    }

    /// A batch's writes, made ready before its transaction opens.
    ///
    /// A projector's transaction holds a transaction id from its first row lock, and the log's
    /// safe order makes every reader on the server wait for the oldest open one (a follower in
    /// any database of the cluster): so nothing but SQL runs inside it. A folded projection's
    /// events are decoded and folded into changes here; others bring their statements.
    enum PreparedWrites: Sendable {
        case statements([[SQLStatement]])
        case fold([FoldChange])
    }

    /// Decodes `events` (a fold throws `FoldRefused` for an event it cannot apply).
    func prepare(_ events: [(RecordedEvent, [SQLStatement])]) async throws -> PreparedWrites {
        guard let folding = projection as? any FoldingPostgresProjection else { return .statements(events.map(\.1)) }
        return .fold(try await decode(folding, events.map(\.0)))
    }

    /// For a rebuild: as `prepare`, but an event the projection refuses is left out (it is parked
    /// for the live runner already).
    func prepareSkippingRefused(_ events: [RecordedEvent]) async throws -> PreparedWrites {
        guard let folding = projection as? any FoldingPostgresProjection else {
            return .statements(events.compactMap { try? projection.statements(for: $0) })
        }
        do {
            return .fold(try await decode(folding, events))
        } catch is FoldRefused {
            var changes: [FoldChange] = []
            for event in events {
                do { changes += try await decode(folding, [event]) } catch is FoldRefused { continue }
            }
            return .fold(changes)
        }
    }

    private func decode<F: FoldingPostgresProjection>(_ folding: F, _ events: [RecordedEvent]) async throws -> [FoldChange] {
        try await RowFolder(projection: folding, logger: logger).decode(events)
    }

    static var statementsPerBlock: Int { 250 }

    /// Writes prepared writes to the generation's tables. `known`: see `RowFolder.write`.
    func write(_ prepared: PreparedWrites, tables: [String: String], on connection: PostgresConnection, known: FoldKeys? = nil) async throws {
        switch prepared {
        case .statements(let statements):
            // A batch's statements travel together, a few hundred per round trip, as one
            // anonymous PL/pgSQL block with their values inlined as typed literals: one round
            // trip instead of one per statement, so the transaction (which holds back every
            // reader of the log on the server) lasts no longer than its SQL. A statement that
            // cannot go in a block (not a plain INSERT, UPDATE or DELETE) goes alone, in order.
            var block: [String] = []
            func flush() async throws {
                guard !block.isEmpty else { return }
                if let sql = SQLStatement.anonymousBlock(block) {
                    _ = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
                } else {
                    for statement in block { _ = try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
                }
                block.removeAll(keepingCapacity: true)
            }
            for statement in statements.joined() {
                if statement.blockable, let inlined = statement.inlined(tables: tables) {
                    block.append(inlined)
                    if block.count >= Self.statementsPerBlock { try await flush() }
                } else {
                    try await flush()
                    _ = try await connection.query(statement.query(tables: tables), logger: logger)
                }
            }
            try await flush()
        case .fold(let changes):
            guard let folding = projection as? any FoldingPostgresProjection else { return }
            try await write(folding, changes, tables: tables, on: connection, known: known)
        }
    }

    private func write<F: FoldingPostgresProjection>(
        _ folding: F, _ changes: [FoldChange], tables: [String: String], on connection: PostgresConnection, known: FoldKeys?
    ) async throws {
        try await RowFolder(projection: folding, logger: logger).write(changes, tables: tables, on: connection, known: known)
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

    /// A folded batch's changes, decoded ahead: one per event (nil: the event changes nothing).
    struct DecodedBatch: Sendable {
        let eventIDs: [UUID]
        let changes: [FoldChange?]
    }

    /// A folded projection decodes the batch ahead, while the runner applies the one before it.
    /// An event its fold refuses leaves nothing decoded ahead: `apply` then decodes the batch
    /// itself, fails it, and the runner goes one event at a time.
    public func prepare(_ events: [RecordedEvent]) async -> (any Sendable)? {
        guard !events.isEmpty, let folding = projection as? any FoldingPostgresProjection else { return nil }
        return try? await Self.decodeEach(folding, events)
    }

    private static func decodeEach<F: FoldingPostgresProjection>(_ folding: F, _ events: [RecordedEvent]) async throws -> DecodedBatch {
        func changes(_ part: ArraySlice<RecordedEvent>) throws -> [FoldChange?] { try part.map { try folding.foldChange(for: $0) } }
        let middle = events.count / 2
        // Two tasks for a large batch, as `RowFolder.decode`.
        guard events.count >= 1_000 else { return DecodedBatch(eventIDs: events.map(\.eventID), changes: try changes(events[...])) }
        async let first = changes(events[..<middle])
        let second = try changes(events[middle...])
        return DecodedBatch(eventIDs: events.map(\.eventID), changes: try await first + second)
    }

    public func apply(_ steps: [ProjectionStep<[SQLStatement]>], prepared: (any Sendable)?, after: Checkpoint, through: Checkpoint, epoch: Int64) async throws {
        guard let decoded = prepared as? DecodedBatch, decoded.eventIDs.elementsEqual(steps.lazy.map(\.event.eventID)) else {
            return try await apply(steps, after: after, through: through, epoch: epoch)
        }
        // The changes of the events the runner applies (not those parked or held).
        let changes = zip(steps, decoded.changes).compactMap { step, change -> FoldChange? in
            if case .apply = step { change } else { nil }
        }
        try await commit(steps, .fold(changes), after: after, through: through, epoch: epoch)
    }

    public func apply(_ steps: [ProjectionStep<[SQLStatement]>], after: Checkpoint, through: Checkpoint, epoch: Int64) async throws {
        let prepared = try await prepare(steps.compactMap { step in
            if case .apply(let event, let statements) = step { (event, statements) } else { nil }
        })
        try await commit(steps, prepared, after: after, through: through, epoch: epoch)
    }

    private func commit(
        _ steps: [ProjectionStep<[SQLStatement]>], _ prepared: PreparedWrites, after: Checkpoint, through: Checkpoint, epoch: Int64
    ) async throws {
        try await transaction { connection in
            try await table.advance(after: after, through: through, epoch: epoch, on: connection) { generation in
                try await write(prepared, tables: physicalNames(generation: generation), on: connection)
                try await PostgresParkedEventStore.insert(steps, projector: projection.name, on: connection, logger: logger)
            }
        }
    }

    public func applyReleased(_ events: [(RecordedEvent, [SQLStatement])], epoch: Int64) async throws {
        let prepared = try await prepare(events)
        try await transaction { connection in
            let (generation, _) = try await table.lock(epoch: epoch, on: connection)
            try await write(prepared, tables: physicalNames(generation: generation), on: connection)
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
