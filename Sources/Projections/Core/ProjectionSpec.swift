import Events
import Foundation

/// Given/then for projections, with no I/O: the events a stream recorded, then the writes the
/// projection makes of them.
///
///     try ProjectionSpec.given([.event(created, stream: "agent-\(id)")])
///         .then(AgentListProjection(), [.insert("agents_by_owner", [1: .uuid(id)])])
///
///     try ProjectionSpec.given(events).then(ExecutionCacheProjection(), keys: ["execution:\(id)": [...]])
///
/// A Postgres projection is checked statement by statement (verb, table, and the binds a spec
/// names); a Redis projection by the keys its writes leave, applied to an in-memory keyspace.
/// Failures throw `ProjectionSpecFailure` saying what differs.
public struct ProjectionSpec: Sendable {
    public let events: [RecordedEvent]

    public static func given(_ events: [RecordedEvent]) -> ProjectionSpec { ProjectionSpec(events: events) }

    /// One expected statement: its verb, its table, and the binds to compare (by 1-based index;
    /// binds not named are not compared).
    public struct Write: Sendable, Equatable, CustomStringConvertible {
        public var verb: String
        public var table: String
        public var binds: [Int: SQLValue]

        public static func insert(_ table: String, _ binds: [Int: SQLValue] = [:]) -> Write { Write(verb: "INSERT", table: table, binds: binds) }
        public static func update(_ table: String, _ binds: [Int: SQLValue] = [:]) -> Write { Write(verb: "UPDATE", table: table, binds: binds) }
        public static func delete(_ table: String, _ binds: [Int: SQLValue] = [:]) -> Write { Write(verb: "DELETE", table: table, binds: binds) }

        public var description: String { "\(verb) \(table) \(binds.sorted { $0.key < $1.key }.map { "$\($0.key)=\($0.value)" })" }

        func matches(_ statement: SQLStatement) -> Bool {
            let (verb, table) = Self.shape(of: statement)
            return verb == self.verb && table == self.table
                && binds.allSatisfy { index, value in index >= 1 && index <= statement.binds.count && statement.binds[index - 1] == value }
        }

        /// The statement's verb (its first word) and the table it names first (`{table}`).
        static func shape(of statement: SQLStatement) -> (verb: String, table: String) {
            let sql = statement.sql.trimmingCharacters(in: .whitespacesAndNewlines)
            let verb = String(sql.prefix { !$0.isWhitespace }).uppercased()
            guard let open = sql.firstIndex(of: "{"), let close = sql[open...].firstIndex(of: "}") else { return (verb, "") }
            return (verb, String(sql[sql.index(after: open)..<close]))
        }
    }

    /// The statements `projection` makes of the events, in order. Throws what the projection
    /// throws (an event it would park).
    public func statements(_ projection: some PostgresProjection) throws -> [SQLStatement] {
        try events.flatMap { try projection.statements(for: $0) }
    }

    /// Passes when the projection makes exactly these statements, in order.
    public func then(_ projection: some PostgresProjection, _ expected: [Write]) throws {
        let actual = try statements(projection)
        guard actual.count == expected.count, zip(expected, actual).allSatisfy({ $0.matches($1) }) else {
            let shown = actual.map { statement -> String in
                let (verb, table) = Write.shape(of: statement)
                return "\(verb) \(table) \(statement.binds)"
            }
            throw ProjectionSpecFailure("expected \(expected), got \(shown)")
        }
    }

    /// Passes when the projection refuses an event (the runner would park it).
    public func thenParks(_ projection: some PostgresProjection) throws {
        let count: Int
        do {
            count = try statements(projection).count
        } catch {
            return
        }
        throw ProjectionSpecFailure("expected the projection to refuse an event, got \(count) statements")
    }

    /// The keyspace a Redis projection's writes leave: hashes and sets by relative key (sets as
    /// a hash of member to "1"). Expiry is recorded, not enforced.
    public func keys(_ projection: some RedisProjection) throws -> [String: [String: String]] {
        var keys: [String: [String: String]] = [:]
        for write in try events.flatMap({ try projection.writes(for: $0) }) {
            switch write {
            case .hashSet(let key, let fields): keys[key, default: [:]].merge(fields) { $1 }
            case .delete(let key): keys[key] = nil
            case .expire: break
            case .setAdd(let key, let members): for member in members { keys[key, default: [:]][member] = "1" }
            case .setRemove(let key, let members):
                for member in members { keys[key]?[member] = nil }
                if keys[key]?.isEmpty == true { keys[key] = nil }
            }
        }
        return keys
    }

    /// Passes when the projection's writes leave exactly these keys.
    public func then(_ projection: some RedisProjection, keys expected: [String: [String: String]]) throws {
        let actual = try keys(projection)
        guard actual == expected else { throw ProjectionSpecFailure("expected keys \(expected), got \(actual)") }
    }

    /// The expiries the writes set, by key.
    public func expiries(_ projection: some RedisProjection) throws -> [String: Int] {
        var expiries: [String: Int] = [:]
        for case .expire(let key, let seconds) in try events.flatMap({ try projection.writes(for: $0) }) { expiries[key] = seconds }
        return expiries
    }
}

extension RecordedEvent {
    /// A recorded event for specs: `payload` encoded as the store would hold it, at `version` of
    /// `stream`, with the version as its position.
    public static func recorded<E: DomainEvent>(
        _ payload: E, stream: String, version: Int64, at date: Date = Date(timeIntervalSince1970: 1_700_000_000)
    ) throws -> RecordedEvent {
        RecordedEvent(
            streamID: stream, streamVersion: version, checkpoint: Checkpoint(transactionID: UInt64(version), position: version),
            eventID: UUID(), eventType: E.eventType, schemaVersion: E.schemaVersion, data: try EventCoding.encode(payload),
            metadata: EventMetadata(), recordedAt: date)
    }
}

public struct ProjectionSpecFailure: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
