import Foundation

/// A value bound to a SQL parameter.
public enum SQLValue: Sendable, Hashable {
    case text(String)
    case int(Int64)
    case double(Double)
    case bool(Bool)
    case uuid(UUID)
    /// Bound as text and cast by the statement (`$1::jsonb`).
    case json(Data)
    case timestamp(Date)
    case null
}

/// One statement a Postgres projection wants run. `sql` names its tables as `{table}` placeholders
/// (e.g. `{agents}`), which the store replaces with the physical table of the generation being
/// written, and binds `$1`, `$2`, ... to `binds`.
public struct SQLStatement: Sendable, Hashable {
    public var sql: String
    public var binds: [SQLValue]

    public init(_ sql: String, _ binds: [SQLValue] = []) {
        self.sql = sql
        self.binds = binds
    }
}

/// A table a Postgres projection owns. `ddl` creates it under a `{table}` placeholder; each
/// generation gets its own physical table, and a view named `name` points at the active one.
public struct ReadModelTable: Sendable, Hashable {
    public var name: String
    public var ddl: String

    public init(name: String, ddl: String) {
        self.name = name
        self.ddl = ddl
    }
}

/// One Redis write of a Redis projection. Keys are relative: the store prefixes them with the
/// projection's namespace and generation.
public enum RedisWrite: Sendable, Hashable {
    case hashSet(key: String, fields: [String: String])
    case delete(key: String)
    /// Seconds until the key expires.
    case expire(key: String, seconds: Int)
    case setAdd(key: String, members: [String])
    case setRemove(key: String, members: [String])
}
