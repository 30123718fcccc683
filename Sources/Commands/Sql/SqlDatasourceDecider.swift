import Events
import Foundation

extension DomainError.Code {
    public static let sqlDatasourceExists: Self = "sql.datasource_exists"
    public static let sqlDatasourceInvalid: Self = "sql.datasource_invalid"
}

/// A registered outside database: registered once, removed once. The checks that need the
/// database itself (reachable, not a superuser, no write privilege) run before the command.
public enum SqlDatasourceDecider: Decider {
    public enum Command: Sendable, Equatable {
        case register(SqlDatasourceRegistered)
        case remove(SqlDatasourceRemoved)
    }

    public enum Status: String, Sendable, Codable { case absent, registered, removed }

    public struct State: Sendable, Equatable {
        public var status: Status = .absent
        public var registered: SqlDatasourceRegistered?
    }

    public static let category = "sqldatasource"
    public static let initialState = State()
    public static let name = TextLimit(characters: 1...200)

    public static func streamID(_ id: UUID) -> StreamID { StreamID(category: category, id: id) }

    public static func decide(_ command: Command, state: State) throws -> [SqlDatasourceEvent] {
        switch command {
        case .register(let registered):
            guard state.status == .absent else { throw DomainError(.conflict, code: .sqlDatasourceExists, "the data source already exists") }
            try name.check(registered.name, field: "name", code: .sqlDatasourceInvalid)
            guard (1...20).contains(registered.schemas.count), registered.schemas.allSatisfy({ TextLimit(characters: 1...63).admits($0) }) else {
                throw DomainError(.invalid, code: .sqlDatasourceInvalid, "schemas must name 1 to 20 schemas")
            }
            return [.registered(registered)]
        case .remove(let removed):
            guard state.status == .registered else { throw DomainError(.notFound, code: .sqlDatasourceNotFound, "no such data source") }
            return [.removed(removed)]
        }
    }

    public static func evolve(_ state: State, _ event: SqlDatasourceEvent) -> State {
        var state = state
        switch event {
        case .registered(let registered):
            state.status = .registered
            state.registered = registered
        case .removed: state.status = .removed
        }
        return state
    }
}
