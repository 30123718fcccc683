import Events
import Foundation
import Logging
import NIOCore
import PostgresNIO
import Projections
import Synchronization

/// The fold's failure for an event it cannot apply: data the read model refuses, so the runner
/// goes through the batch one event at a time and parks that one.
struct FoldRefused: Error, CustomStringConvertible {
    let description: String
}

/// The keys a rebuild has written to its new generation so far, up to `capacity` (2 million, some
/// 150 MB); past that, every key may exist and is loaded.
final class FoldKeys: Sendable {
    private let keys = Mutex((set: Set<SQLValue>(), overflowed: false))
    let capacity: Int

    init(capacity: Int = 2_000_000) { self.capacity = capacity }

    func contains(_ key: SQLValue) -> Bool { keys.withLock { $0.overflowed || $0.set.contains(key) } }

    func insert(_ new: [SQLValue]) {
        keys.withLock { keys in
            guard !keys.overflowed else { return }
            keys.set.formUnion(new)
            if keys.set.count > capacity { keys = (set: [], overflowed: true) }
        }
    }
}

/// Folded projections' batches: load the rows the batch touches (one query), fold the events over
/// them in memory, write each changed row once (a COPY of new rows, an update from a JSON
/// recordset, one delete).
struct RowFolder<P: FoldingPostgresProjection>: Sendable {
    let projection: P
    let logger: Logger

    /// Writes `changes` (from `decode`, which callers run before their transaction opens: see
    /// `PostgresProjectionStore.prepare`). `known`: in a rebuild, the keys written so far (the
    /// only rows the new generation can hold), so only those are loaded. Nil: load every key (a
    /// live read model).
    func write(_ changes: [FoldChange], tables: [String: String], on connection: PostgresConnection, known: FoldKeys? = nil) async throws {
        let table = projection.foldTable
        guard let physical = tables[table.name] else { throw FoldRefused(description: "no table \(table.name)") }
        var keys: [SQLValue] = []
        var seen = Set<SQLValue>()
        for change in changes where seen.insert(change.key).inserted { keys.append(change.key) }
        guard !keys.isEmpty else { return }
        let toLoad = known.map { known in keys.filter { known.contains($0) } } ?? keys
        var rows = toLoad.isEmpty ? [:] : try await load(toLoad, from: physical, on: connection)
        let existed = Set(rows.keys)
        let changed = Projections.fold(changes, into: &rows)
        var inserted: [FoldRow] = [], updated: [FoldRow] = [], deleted: [SQLValue] = []
        for key in changed {
            switch (rows[key], existed.contains(key)) {
            case (let row?, true): updated.append(row)
            case (let row?, false): inserted.append(row)
            case (nil, true): deleted.append(key)
            case (nil, false): break
            }
        }
        // No conflict is possible: the lease (or the rebuild's own new generation) makes this the
        // only writer, and the rows were just read.
        if !inserted.isEmpty {
            // New rows go by COPY: Postgres parses its text format in a third of the time it
            // takes to unpack the same rows from a JSON array (5,000 rows of agents_by_owner: 41
            // against 110 ms).
            let rows = Self.copyText(inserted, table: table)
            try await connection.copyFrom(table: physical, columns: table.columns.map(\.name), format: .text(.init()), logger: logger) {
                try await $0.write(rows)
            }
        }
        if !updated.isEmpty, table.columns.count > 1 {
            let assignments = table.columns.dropFirst().map { "\($0.name) = r.\($0.name)" }.joined(separator: ", ")
            var binds = PostgresBindings()
            binds.append(Self.json(updated, table: table))
            _ = try await connection.query(PostgresQuery(unsafeSQL: """
                UPDATE \(physical) AS t SET \(assignments) FROM jsonb_populate_recordset(NULL::\(physical), $1::jsonb) AS r
                WHERE t.\(table.key) = r.\(table.key)
                """, binds: binds), logger: logger)
        }
        if !deleted.isEmpty {
            _ = try await connection.query(
                PostgresQuery(unsafeSQL: "DELETE FROM \(physical) WHERE \(table.key) = ANY($1)", binds: try Self.keyArray(deleted)), logger: logger)
        }
        known?.insert(inserted.compactMap { $0[table.key] })
    }

    /// The events' changes, decoded on two tasks when the batch is large: decoding is most of a
    /// batch's work, and the machine has more than one core.
    func decode(_ events: [RecordedEvent]) async throws -> [FoldChange] {
        let projection = self.projection
        do {
            guard events.count >= 1_000 else { return try projection.foldChanges(events) }
            let middle = events.count / 2
            async let first = projection.foldChanges(Array(events[..<middle]))
            let second = try projection.foldChanges(Array(events[middle...]))
            return try await first + second
        } catch {
            throw FoldRefused(description: String(describing: error))
        }
    }

    /// The stored rows of `keys`, as the fold sees them (text and JSON restored from their stored
    /// form, as readers restore them).
    func load(_ keys: [SQLValue], from physical: String, on connection: PostgresConnection) async throws -> [SQLValue: FoldRow] {
        let table = projection.foldTable
        var rows: [SQLValue: FoldRow] = [:]
        let result = try await connection.query(
            PostgresQuery(unsafeSQL: "SELECT to_jsonb(t)::text FROM \(physical) t WHERE \(table.key) = ANY($1)", binds: try Self.keyArray(keys)),
            logger: logger)
        for try await text in result.decode(String.self) {
            guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { continue }
            var row: FoldRow = [:]
            for (name, type) in table.columns { row[name] = try Self.value(object[name], as: type) }
            if let key = row[table.key] { rows[key] = row }
        }
        return rows
    }

    static func keyArray(_ keys: [SQLValue]) throws -> PostgresBindings {
        var binds = PostgresBindings()
        var uuids: [UUID] = [], texts: [String] = [], ints: [Int64] = []
        for key in keys {
            switch key {
            case .uuid(let v): uuids.append(v)
            case .text(let v): texts.append(PostgresText.encode(v))
            case .int(let v): ints.append(v)
            default: throw FoldRefused(description: "a fold key must be a uuid, text or bigint, not \(key)")
            }
        }
        if !uuids.isEmpty { binds.append(uuids) } else if !texts.isEmpty { binds.append(texts) } else { binds.append(ints) }
        return binds
    }

    /// A column's value from `to_jsonb` of its row.
    static func value(_ json: Any?, as type: FoldTable.ColumnType) throws -> SQLValue {
        guard let json, !(json is NSNull) else { return .null }
        switch type {
        case .text: return .text(PostgresText.decode(json as? String ?? ""))
        case .bigint: return .int((json as? NSNumber)?.int64Value ?? 0)
        case .double: return .double((json as? NSNumber)?.doubleValue ?? 0)
        case .boolean: return .bool((json as? NSNumber)?.boolValue ?? false)
        case .uuid: return (json as? String).flatMap(UUID.init(uuidString:)).map(SQLValue.uuid) ?? .null
        case .jsonb: return .json(PostgresText.decodeJSON(try JSONSerialization.data(withJSONObject: json, options: [.fragmentsAllowed])))
        case .timestamptz:
            guard let text = json as? String, let date = Self.parseTimestamp(text) else { return .null }
            return .timestamp(date)
        }
    }

    /// `to_jsonb`'s timestamptz: `2026-12-01T04:40:00.123456+00:00`, fraction optional.
    static func parseTimestamp(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return Self.microseconds(date, text) }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text).map { Self.microseconds($0, text) }
    }

    /// ISO8601DateFormatter keeps milliseconds only: the microseconds are read from the text. The
    /// Date is put half a microsecond past the stored one, so that writing it again (PostgresNIO's
    /// truncation to whole microseconds, and `RowFolderTimestamp.write`) gives back exactly the stored
    /// value despite the double's rounding; without it a reloaded row lost a microsecond.
    static func microseconds(_ date: Date, _ text: String) -> Date {
        var micros: Int64 = 0
        if let dot = text.firstIndex(of: ".") {
            let digits = text[text.index(after: dot)...].prefix { $0.isNumber }
            micros = Int64((digits + String(repeating: "0", count: max(0, 6 - digits.count))).prefix(6)) ?? 0
        }
        let whole = Int64(date.timeIntervalSince1970.rounded(.down)) - 946_684_800
        return Date(timeInterval: (Double(whole * 1_000_000 + micros) + 0.5) / 1_000_000, since: Date(timeIntervalSince1970: 946_684_800))
    }

    /// The rows in `COPY`'s text format, columns in the table's order: a value's backslashes,
    /// tabs, newlines and carriage returns escaped, `\N` for NULL. Values are written as the JSON
    /// rows write them (text escaped by `PostgresText`, timestamps at PostgresNIO's microseconds),
    /// so Postgres stores the same thing either way.
    static func copyText(_ rows: [FoldRow], table: FoldTable) -> ByteBuffer {
        var out = [UInt8]()
        out.reserveCapacity(rows.count * 200)
        var value = [UInt8]()
        for row in rows {
            for (column, (name, _)) in table.columns.enumerated() {
                if column > 0 { out.append(UInt8(ascii: "\t")) }
                value.removeAll(keepingCapacity: true)
                switch row[name] ?? .null {
                case .null:
                    out.append(contentsOf: "\\N".utf8)
                    continue
                case .text(let text): value.append(contentsOf: PostgresText.encode(text).utf8)
                case .int(let number): value.append(contentsOf: String(number).utf8)
                case .double(let number): value.append(contentsOf: PostgresText.float8(number).utf8)
                case .bool(let flag): value.append(flag ? UInt8(ascii: "t") : UInt8(ascii: "f"))
                case .uuid(let id): value.append(contentsOf: id.uuidString.utf8)
                case .json(let data): value.append(contentsOf: PostgresText.encodeJSON(data))
                case .timestamp(let date): RowFolderTimestamp.write(date, to: &value, quoted: false)
                }
                for byte in value {
                    switch byte {
                    case UInt8(ascii: "\\"): out.append(contentsOf: "\\\\".utf8)
                    case UInt8(ascii: "\t"): out.append(contentsOf: "\\t".utf8)
                    case UInt8(ascii: "\n"): out.append(contentsOf: "\\n".utf8)
                    case UInt8(ascii: "\r"): out.append(contentsOf: "\\r".utf8)
                    default: out.append(byte)
                    }
                }
            }
            out.append(UInt8(ascii: "\n"))
        }
        return ByteBuffer(bytes: out)
    }

    /// The rows as a JSON array for `jsonb_populate_recordset`, written by hand: JSONEncoder cost
    /// more than the rest of a rebuild's batch. Values are stored as the per-event statements
    /// store them: text escaped by `PostgresText`, timestamps at PostgresNIO's microseconds.
    static func json(_ rows: [FoldRow], table: FoldTable) -> String {
        var out = [UInt8]()
        out.reserveCapacity(rows.count * 256)
        out.append(UInt8(ascii: "["))
        for (index, row) in rows.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "{"))
            for (column, (name, _)) in table.columns.enumerated() {
                if column > 0 { out.append(UInt8(ascii: ",")) }
                out.append(UInt8(ascii: "\""))
                out.append(contentsOf: name.utf8)
                out.append(contentsOf: "\":".utf8)
                write(row[name] ?? .null, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "]"))
        return String(decoding: out, as: UTF8.self)
    }

    static func write(_ value: SQLValue, to out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .text(let text): string(PostgresText.encode(text), to: &out)
        case .int(let number): out.append(contentsOf: String(number).utf8)
        case .double(let number):
            // JSON has no NaN or Infinity: those go as strings, which Postgres reads back as float8.
            if number.isFinite { out.append(contentsOf: PostgresText.float8(number).utf8) } else { string(PostgresText.float8(number), to: &out) }
        case .bool(let flag): out.append(contentsOf: (flag ? "true" : "false").utf8)
        case .uuid(let id): string(id.uuidString, to: &out)
        case .json(let data): out.append(contentsOf: PostgresText.encodeJSON(data))
        case .timestamp(let date): RowFolderTimestamp.write(date, to: &out)
        }
    }


    static func string(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: "\\\"".utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: "\\\\".utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: "\\u00".utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xF)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// A timestamp as JSON text, exactly as PostgresNIO binds a Date (the folds' rows, inlined
/// statements).
enum RowFolderTimestamp {
    /// As PostgresNIO binds a Date: whole microseconds since 2000-01-01, truncated. Written
    /// digit by digit (`YYYY-MM-DD HH:MM:SS.ffffff+00`), as a JSON string unless `quoted` is false
    /// (COPY text, an SQL literal's body).
    static func write(_ date: Date, to out: inout [UInt8], quoted: Bool = true) {
        let micros = Int64(date.timeIntervalSince(Date(timeIntervalSince1970: 946_684_800)) * 1_000_000) + 946_684_800_000_000
        var seconds = micros / 1_000_000
        var fraction = micros % 1_000_000
        if fraction < 0 {
            fraction += 1_000_000
            seconds -= 1
        }
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        func digits(_ value: Int64, _ width: Int) {
            var divisor: Int64 = 1
            for _ in 1..<width { divisor *= 10 }
            var rest = value
            while divisor > 0 {
                out.append(UInt8(48 + (rest / divisor) % 10))
                rest %= divisor
                divisor /= 10
            }
        }
        if quoted { out.append(UInt8(ascii: "\"")) }
        digits(Int64(parts.tm_year) + 1900, 4)
        out.append(UInt8(ascii: "-"))
        digits(Int64(parts.tm_mon) + 1, 2)
        out.append(UInt8(ascii: "-"))
        digits(Int64(parts.tm_mday), 2)
        out.append(UInt8(ascii: " "))
        digits(Int64(parts.tm_hour), 2)
        out.append(UInt8(ascii: ":"))
        digits(Int64(parts.tm_min), 2)
        out.append(UInt8(ascii: ":"))
        digits(Int64(parts.tm_sec), 2)
        out.append(UInt8(ascii: "."))
        digits(fraction, 6)
        out.append(contentsOf: "+00".utf8)
        if quoted { out.append(UInt8(ascii: "\"")) }
    }
}
