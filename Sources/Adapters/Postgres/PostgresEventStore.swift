import Commands
import Events
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// The event store on PostgreSQL (schema in eventstore/migrations, explained in eventstore/README.md).
///
/// An append is one INSERT … SELECT FROM unnest(…) guarded by the stream's current version, so a
/// command's events go in together or not at all in one round trip. The unique constraints settle
/// races: two writers at the same version cannot both insert version n + 1, and an event id stored
/// before marks a repeated command.
public struct PostgresEventStore: EventStore, CorrelationReader {
    public let client: PostgresClient
    public let logger: Logger
    /// Wakes in-process readers at once after a local append; other processes hear NOTIFY.
    public let signal: AppendSignal

    /// Whether appends chain each event's hash to the one before it (migrations 0006, 0007).
    /// Always, but for the benchmark measuring what the chain costs: its unchained events store an
    /// empty hash (the trigger then does not run), which `chronicle audit verify` reports.
    public let chained: Bool
    /// Concurrent one-event appends share a statement (see `AppendGroups`).
    let groups: AppendGroups?

    /// `groupCommit: false` gives each append its own statement (the benchmark's peer figure).
    public init(client: PostgresClient, logger: Logger, signal: AppendSignal = AppendSignal(), chained: Bool = true, groupCommit: Bool = true) {
        self.client = client
        self.logger = logger
        self.signal = signal
        self.chained = chained
        groups = groupCommit ? AppendGroups(client: client, logger: logger, chained: chained) : nil
    }

    /// Group commit so far: groups committed, appends they held, the largest group.
    public var groupCommitStats: (groups: Int, appends: Int, largest: Int) { groups?.stats ?? (0, 0, 0) }

    static let columns = columns(of: "events")

    /// The select list `fetch` decodes, qualified by a table name or alias. Every column comes in
    /// PostgreSQL's binary format: `jsonb` as a version byte and its text, `xid8` as eight bytes.
    static func columns(of table: String) -> String {
        [
            "global_position", "stream_id", "stream_version", "event_id", "event_type", "schema_version",
            "data", "metadata", "recorded_at", "transaction_id",
        ].map { "\(table).\($0)" }.joined(separator: ", ")
    }

    /// A stream's events from a version on: how every command loads its stream.
    enum ReadStreamForward: PreparedSQL {
        static let sql = """
            SELECT \(columns) FROM events WHERE stream_id = $1 AND stream_version >= $2
            ORDER BY events.stream_version LIMIT $3
            """
    }

    /// Every follower's page. Only transactions older than every open one: their events can no
    /// longer be overtaken.
    enum ReadAll: PreparedSQL {
        static let sql = """
            SELECT \(columns) FROM events
            WHERE (transaction_id, global_position) > ($1::xid8, $2) AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
            ORDER BY events.transaction_id, events.global_position LIMIT $3
            """
    }

    /// The first event after ($1, $2) that an open transaction holds back, if any: every follower
    /// asks each time it catches up. Written as the first row in index order, not `EXISTS`: the
    /// generic plan of `EXISTS (…)` scanned the table (3.4 ms), this one starts at the checkpoint.
    enum HeldBack: PreparedSQL {
        static let sql = """
            SELECT 1 FROM events
            WHERE (transaction_id, global_position) > ($1::xid8, $2) AND transaction_id >= pg_snapshot_xmin(pg_current_snapshot())
            ORDER BY events.transaction_id, events.global_position LIMIT 1
            """
    }

    /// All events of the command whose first event id is $1: the repeat check before every command.
    enum PriorAppend: PreparedSQL {
        static let sql = """
            WITH first AS (SELECT stream_id, transaction_id, metadata->>'command_id' AS command_id
                           FROM events WHERE event_id = $1)
            SELECT \(columns(of: "e")) FROM events e JOIN first f
              ON e.stream_id = f.stream_id AND e.transaction_id = f.transaction_id
             AND e.metadata->>'command_id' IS NOT DISTINCT FROM f.command_id
            ORDER BY e.global_position
            """
    }

    /// `PriorAppend` and `ReadStreamForward` in one round trip: the prior append's rows (part 0,
    /// in log order), then the stream's page (part 1, in version order). $1 the command's first
    /// event id, $2 the stream, $3 the first version, $4 the page's size.
    enum PriorAppendAndStream: PreparedSQL {
        static let sql = """
            WITH first AS (SELECT stream_id, transaction_id, metadata->>'command_id' AS command_id
                           FROM events WHERE event_id = $1),
            prior AS (SELECT \(columns(of: "e")), 0 AS part FROM events e JOIN first f
                        ON e.stream_id = f.stream_id AND e.transaction_id = f.transaction_id
                       AND e.metadata->>'command_id' IS NOT DISTINCT FROM f.command_id),
            page AS (SELECT \(columns), 1 AS part FROM events WHERE stream_id = $2 AND stream_version >= $3
                     ORDER BY events.stream_version LIMIT $4)
            SELECT * FROM (SELECT * FROM prior UNION ALL SELECT * FROM page) command
            ORDER BY part, CASE part WHEN 0 THEN global_position ELSE stream_version END
            """
    }

    public func append(to streamID: String, expected: ExpectedVersion, events: [NewEvent]) async throws -> AppendResult {
        precondition(!events.isEmpty, "append needs at least one event")
        // `.any` and `.streamExists` promise no version, so losing a race for the next version
        // to another writer is not a conflict for them: try again on the new head.
        let attempts = (expected == .any || expected == .streamExists) ? 10 : 1
        for attempt in 1...attempts {
            do {
                return try await appendOnce(to: streamID, expected: expected, events: events)
            } catch EventStoreError.versionConflict(_, _, let actual) where attempt < attempts && (expected == .any || actual > 0) {
                continue
            }
        }
        preconditionFailure("unreachable: the last attempt returns or throws")
    }

    private func appendOnce(to streamID: String, expected: ExpectedVersion, events: [NewEvent]) async throws -> AppendResult {
        if events.count == 1, let groups {
            switch await groups.submit(AppendGroups.Request(streamID: streamID, expected: expected, event: events[0])) {
            case .written(let position, let version, let transaction):
                signal.signal()
                return AppendResult(
                    streamID: streamID, streamVersion: version,
                    checkpoint: Checkpoint(transactionID: UInt64(transaction) ?? 0, position: position),
                    positions: [position], duplicate: false)
            case .rejected:
                return try await resolveRejected(streamID: streamID, expected: expected, events: events)
            case .failed(let error):
                throw unavailable(error)
            }
        }
        // Strings Postgres would refuse (U+0000) are stored escaped and restored by `fetch`.
        let metadata = try events.map { String(decoding: PostgresText.encodeJSON(try EventCoding.encode($0.metadata)), as: UTF8.self) }
        let (exact, mustExist): (Int64?, Bool) =
            switch expected {
            case .any: (nil, false)
            case .noStream: (0, false)
            case .streamExists: (nil, true)
            case .exact(let version): (version, false)
            }
        let data = events.map { String(decoding: PostgresText.encodeJSON($0.data), as: UTF8.self) }
        let ids = events.map(\.eventID), types = events.map(\.eventType), versions = events.map { Int32($0.schemaVersion) }
        // One statement. Each row's hash is chained to the one before it by the `events_chain`
        // trigger (migrations 0006, 0007), which sees the rows this statement inserted before it.
        let hash = chained ? "NULL::bytea" : "'\\x'::bytea"
        let query: PostgresQuery = """
            INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, data, metadata, hash)
            SELECT \(streamID), head.version + t.ord, t.id, t.type, t.version, t.data::jsonb, t.meta::jsonb, \(unescaped: hash)
            FROM (SELECT COALESCE(max(stream_version), 0) AS version FROM events WHERE stream_id = \(streamID)) AS head,
                 unnest(\(ids), \(types), \(versions), \(data), \(metadata))
                   WITH ORDINALITY AS t(id, type, version, data, meta, ord)
            WHERE (\(exact)::bigint IS NULL OR head.version = \(exact)::bigint)
              AND (NOT \(mustExist) OR head.version > 0)
            ORDER BY t.ord
            RETURNING global_position, stream_version, transaction_id::text
            """
        var written: [(position: Int64, version: Int64, transaction: String)] = []
        do {
            for try await row in try await client.query(query, logger: logger).decode((Int64, Int64, String).self) {
                written.append(row)
            }
        } catch where PostgresErrors.sqlState(error) == PostgresErrors.uniqueViolation {
            // Another writer took the version, or this command was stored before.
            return try await resolveRejected(streamID: streamID, expected: expected, events: events)
        } catch {
            throw unavailable(error)
        }
        guard written.count == events.count else {
            return try await resolveRejected(streamID: streamID, expected: expected, events: events)
        }
        written.sort { $0.version < $1.version }
        signal.signal()
        let last = written[written.count - 1]
        return AppendResult(
            streamID: streamID, streamVersion: last.version,
            checkpoint: Checkpoint(transactionID: UInt64(last.transaction) ?? 0, position: last.position),
            positions: written.map(\.position), duplicate: false)
    }

    /// An append that inserted nothing: either a repeated command (all ids stored before) or a
    /// version conflict.
    private func resolveRejected(streamID: String, expected: ExpectedVersion, events: [NewEvent]) async throws -> AppendResult {
        let ids = events.map(\.eventID)
        let stored = try await fetch(
            "SELECT \(unescaped: Self.columns) FROM events WHERE event_id = ANY(\(ids)) ORDER BY events.global_position")
        if stored.isEmpty {
            let actual = try await streamVersion(streamID)
            throw EventStoreError.versionConflict(streamID: streamID, expected: expected, actual: actual)
        }
        guard stored.count == ids.count, stored.allSatisfy({ $0.streamID == streamID }) else {
            throw EventStoreError.idempotencyMismatch(streamID: streamID)
        }
        return Self.result(of: stored, duplicate: true)
    }

    public func readStream(_ streamID: String, from version: Int64, direction: ReadDirection, limit: Int) async throws -> [RecordedEvent] {
        switch direction {
        case .forward:
            try await fetch(Prepared<ReadStreamForward> {
                $0.append(streamID)
                $0.append(version)
                $0.append(Int64(limit))
            })
        case .backward:
            try await fetch("""
                SELECT \(unescaped: Self.columns) FROM events
                WHERE stream_id = \(streamID) AND stream_version <= \(version)
                ORDER BY events.stream_version DESC LIMIT \(Int64(limit))
                """)
        }
    }

    public func readAll(after checkpoint: Checkpoint, limit: Int) async throws -> [RecordedEvent] {
        try await fetch(Prepared<ReadAll> {
            $0.append(String(checkpoint.transactionID))
            $0.append(checkpoint.position)
            $0.append(Int64(limit))
        })
    }

    /// Whether committed events wait behind a transaction that is still open: the reader is held
    /// back. Cheap: one probe of the safe-order index.
    public func heldBack(after checkpoint: Checkpoint) async throws -> Bool {
        let rows = try await client.execute(Prepared<HeldBack> {
            $0.append(String(checkpoint.transactionID))
            $0.append(checkpoint.position)
        }, logger: logger)
        for try await _ in rows { return true }
        return false
    }

    public func priorAppendAndStream(firstEventID: UUID, stream: String, from version: Int64, limit: Int) async throws
        -> (prior: AppendResult?, events: [RecordedEvent])
    {
        var prior: [RecordedEvent] = []
        var page: [RecordedEvent] = []
        do {
            let rows = try await client.execute(Prepared<PriorAppendAndStream> {
                $0.append(firstEventID)
                $0.append(stream)
                $0.append(version)
                $0.append(Int64(limit))
            }, logger: logger)
            for try await row in rows {
                var cells = row.makeIterator()
                let event = try Self.event(&cells)
                if try Self.int32(Self.next(&cells)) == 0 { prior.append(event) } else { page.append(event) }
            }
        } catch {
            throw unavailable(error)
        }
        return (prior.isEmpty ? nil : Self.result(of: prior, duplicate: true), page)
    }

    public func priorAppend(firstEventID: UUID) async throws -> AppendResult? {
        // All events of one command share its append's transaction and its command id.
        let events = try await fetch(Prepared<PriorAppend> { $0.append(firstEventID) })
        return events.isEmpty ? nil : Self.result(of: events, duplicate: true)
    }

    public func streamVersion(_ streamID: String) async throws -> Int64 {
        do {
            let rows = try await client.query(
                "SELECT COALESCE(max(stream_version), 0) FROM events WHERE stream_id = \(streamID)", logger: logger)
            for try await version in rows.decode(Int64.self) { return version }
            return 0
        } catch {
            throw unavailable(error)
        }
    }

    /// Through `events_correlation_idx` (migration 0005).
    public func correlated(_ correlationID: String, after position: Int64, limit: Int) async throws -> [RecordedEvent] {
        try await fetch("""
            SELECT \(unescaped: Self.columns) FROM events
            WHERE metadata->>'correlation_id' = \(correlationID) AND global_position > \(position)
            ORDER BY events.global_position LIMIT \(Int64(limit))
            """)
    }

    /// One query for all of them.
    public func streamVersions(_ streamIDs: [String]) async throws -> [String: Int64] {
        do {
            var versions = Dictionary(uniqueKeysWithValues: streamIDs.map { ($0, Int64(0)) })
            let rows = try await client.query(
                "SELECT stream_id, max(stream_version) FROM events WHERE stream_id = ANY(\(streamIDs)) GROUP BY stream_id", logger: logger)
            for try await (stream, version) in rows.decode((String, Int64).self) { versions[stream] = version }
            return versions
        } catch {
            throw unavailable(error)
        }
    }

    /// The checkpoint of the newest readable event; `.start` for an empty store.
    public func head() async throws -> Checkpoint {
        let rows = try await fetch("""
            SELECT \(unescaped: Self.columns) FROM events
            WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
            ORDER BY events.transaction_id DESC, events.global_position DESC LIMIT 1
            """)
        return rows.first?.checkpoint ?? .start
    }

    /// How many events lie after `checkpoint` in the safe order, counted up to `cap`.
    static func count(after checkpoint: Checkpoint, cap: Int, client: PostgresClient, logger: Logger) async throws -> Int {
        let rows = try await client.query("""
            SELECT count(*) FROM (SELECT 1 FROM events
              WHERE (transaction_id, global_position) > (\(String(checkpoint.transactionID))::xid8, \(checkpoint.position))
              LIMIT \(Int64(cap))) AS behind
            """, logger: logger)
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return 0
    }

    private func fetch(_ query: PostgresQuery) async throws -> [RecordedEvent] {
        do {
            return try await Self.events(in: client.query(query, logger: logger))
        } catch {
            throw unavailable(error)
        }
    }

    private func fetch<SQL: PreparedSQL>(_ statement: Prepared<SQL>) async throws -> [RecordedEvent] {
        do {
            return try await Self.events(in: client.execute(statement, logger: logger))
        } catch {
            throw unavailable(error)
        }
    }

    private static func events<Rows: AsyncSequence>(in rows: Rows) async throws -> [RecordedEvent] where Rows.Element == PostgresRow {
        var events: [RecordedEvent] = []
        // Cell by cell from the binary format, in `columns`' order: decoding the row as a
        // ten-element tuple looked up generic tuple metadata on every row, which cost more than
        // the rest of the read (perf, readAll). The iterator is passed `inout` rather than
        // captured by a local function, whose box was checked for exclusive access on every cell.
        for try await row in rows {
            var cells = row.makeIterator()
            events.append(try event(&cells))
        }
        return events
    }

    /// The event in the row's first ten cells, in `columns`' order.
    private static func event(_ cells: inout PostgresRow.Iterator) throws -> RecordedEvent {
        let position = try int64(next(&cells)), stream = try text(next(&cells)), version = try int64(next(&cells))
        let id = try uuid(next(&cells)), type = try text(next(&cells)), schema = try int32(next(&cells))
        let data = try jsonb(next(&cells)), metadata = try jsonb(next(&cells))
        let recordedAt = try timestamp(next(&cells)), transaction = try xid8(next(&cells))
        return RecordedEvent(
            streamID: stream, streamVersion: version, checkpoint: Checkpoint(transactionID: transaction, position: position),
            eventID: id, eventType: type, schemaVersion: Int(schema), data: PostgresText.decodeJSON(data),
            metadata: EventMetadataParser.parse(metadata), recordedAt: recordedAt)
    }

    private static func next(_ cells: inout PostgresRow.Iterator) throws -> ByteBuffer {
        guard let cell = cells.next() else { throw EventStoreError.unavailable("an event row had too few columns") }
        return cell.bytes ?? ByteBuffer()
    }

    static func int64(_ buffer: ByteBuffer) throws -> Int64 {
        guard buffer.readableBytes == 8, let value = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: Int64.self) else {
            throw EventStoreError.unavailable("an event row's bigint was not 8 bytes")
        }
        return value
    }

    static func int32(_ buffer: ByteBuffer) throws -> Int32 {
        guard buffer.readableBytes == 4, let value = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: Int32.self) else {
            throw EventStoreError.unavailable("an event row's integer was not 4 bytes")
        }
        return value
    }

    static func text(_ buffer: ByteBuffer) throws -> String {
        String(buffer: buffer)
    }

    static func uuid(_ buffer: ByteBuffer) throws -> UUID {
        guard buffer.readableBytes == 16 else { throw EventStoreError.unavailable("an event row's uuid was not 16 bytes") }
        return buffer.withUnsafeReadableBytes { UUID(uuid: $0.loadUnaligned(as: uuid_t.self)) }
    }

    /// timestamptz: microseconds since 2000-01-01 UTC, read as PostgresNIO reads it.
    static func timestamp(_ buffer: ByteBuffer) throws -> Date {
        let micros = try int64(buffer)
        return Date(timeInterval: Double(micros) / 1_000_000, since: Date(timeIntervalSince1970: 946_684_800))
    }

    /// A `jsonb` value in binary format: a version byte (1), then the JSON text.
    static func jsonb(_ buffer: ByteBuffer) throws -> Data {
        var buffer = buffer
        guard buffer.readInteger(as: UInt8.self) == 1 else { return Data("null".utf8) }
        return Data(buffer.readableBytesView)
    }

    /// An `xid8` in binary format: eight bytes, big-endian.
    static func xid8(_ buffer: ByteBuffer) throws -> UInt64 {
        var buffer = buffer
        return buffer.readInteger(endianness: .big, as: UInt64.self) ?? 0
    }

    private static func result(of events: [RecordedEvent], duplicate: Bool) -> AppendResult {
        AppendResult(
            streamID: events[0].streamID, streamVersion: events[events.count - 1].streamVersion,
            checkpoint: events[events.count - 1].checkpoint, positions: events.map(\.position), duplicate: duplicate)
    }

    private func unavailable(_ error: any Error) -> any Error {
        if error is EventStoreError { return error }
        if PostgresErrors.isDataRefusal(error) {
            logger.error("event store refused the data", metadata: ["error": "\(String(reflecting: error))"])
            return EventStoreError.refused(PostgresErrors.summary(error))
        }
        if PostgresErrors.sqlState(error) == PostgresErrors.undefinedTable {
            return EventStoreError.unavailable("the database has no event store schema; run 'chronicle migrate'")
        }
        logger.error("event store query failed", metadata: ["error": "\(String(reflecting: error))"])
        return EventStoreError.unavailable(PostgresErrors.summary(error))
    }
}
