import Events
import Foundation

/// A Postgres read model of one table whose rows are folded in memory: a batch's events are
/// applied to the rows they touch, each loaded once, and every changed row is written once, in one
/// statement for the batch. The same events through `statements(for:)` (one event at a time: the
/// refused-data path, released parked events, specs) must leave the same rows; `RebuildTests`
/// compares the two row for row.
public protocol FoldingPostgresProjection: PostgresProjection {
    /// The table the fold keeps: one of `tables`, keyed by its first column.
    var foldTable: FoldTable { get }
    /// What `event` does to the table: the row it touches and the change; nil for nothing.
    /// Throws as `statements(for:)` does (the event is parked).
    func foldChange(for event: RecordedEvent) throws -> FoldChange?
}

/// One event's change to a folded table: the key of its row, and the row before (nil: no such
/// row) made into the row after (nil: deleted).
public struct FoldChange: Sendable {
    public var key: SQLValue
    public var apply: @Sendable (inout FoldRow?) -> Void

    public init(key: SQLValue, apply: @escaping @Sendable (inout FoldRow?) -> Void) {
        self.key = key
        self.apply = apply
    }
}

/// A row of a folded table: its columns' values by name.
public typealias FoldRow = [String: SQLValue]

/// The folded table's columns, key first, each with its SQL type.
public struct FoldTable: Sendable, Hashable {
    public enum ColumnType: String, Sendable, Hashable {
        case text, bigint, double = "double precision", boolean, uuid, jsonb, timestamptz
    }

    public var name: String
    public var columns: [(name: String, type: ColumnType)]

    public init(name: String, columns: [(name: String, type: ColumnType)]) {
        precondition(!columns.isEmpty, "a folded table needs at least its key column")
        self.name = name
        self.columns = columns
    }

    public var key: String { columns[0].name }

    public static func == (lhs: FoldTable, rhs: FoldTable) -> Bool {
        lhs.name == rhs.name && lhs.columns.map(\.name) == rhs.columns.map(\.name) && lhs.columns.map(\.type) == rhs.columns.map(\.type)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        for column in columns {
            hasher.combine(column.name)
            hasher.combine(column.type)
        }
    }
}

extension FoldingPostgresProjection {
    /// The changes of `events`, in order (each event decoded once).
    public func foldChanges(_ events: [RecordedEvent]) throws -> [FoldChange] {
        try events.compactMap { try foldChange(for: $0) }
    }
}

/// Applies `changes` in order over `rows` (the rows as stored before, by key); returns the keys
/// whose rows changed, in the order first changed. A row made nil is gone from `rows`.
public func fold(_ changes: [FoldChange], into rows: inout [SQLValue: FoldRow]) -> [SQLValue] {
    var changed: [SQLValue] = []
    var seen = Set<SQLValue>()
    for change in changes {
        var row = rows[change.key]
        let before = row
        change.apply(&row)
        guard row != before else { continue }
        rows[change.key] = row
        if seen.insert(change.key).inserted { changed.append(change.key) }
    }
    return changed
}
