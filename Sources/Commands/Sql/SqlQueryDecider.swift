import Events
import Foundation

extension DomainError.Code {
    // The Text-to-SQL module's error codes (`sql.*`).
    public static let sqlQueryExists: Self = "sql.query_exists"
    public static let sqlQueryNotFound: Self = "sql.query_not_found"
    public static let sqlQueryEnded: Self = "sql.query_ended"
    public static let sqlQueryInvalid: Self = "sql.query_invalid"
    public static let sqlDatasourceNotFound: Self = "sql.datasource_not_found"
}

/// One question (or statement) over a data source, from request to its one outcome: executed,
/// rejected by the validator, or failed. A statement is recorded before it is checked or run.
public enum SqlQueryDecider: Decider {
    public enum Command: Sendable, Equatable {
        case request(SqlQueryRequested)
        case generate(SqlQueryGenerated)
        case reject(SqlQueryRejected)
        case execute(SqlQueryExecuted)
        case fail(SqlQueryFailed)
    }

    public enum Status: String, Sendable, Codable { case absent, pending, executed, rejected, failed }

    public struct State: Sendable, Equatable {
        public var status: Status = .absent
        public var request: SqlQueryRequested?
        public var generated: SqlQueryGenerated?
        public var rejected: SqlQueryRejected?
        public var executed: SqlQueryExecuted?
        public var failed: SqlQueryFailed?

        /// The statement that is (or was) to run: the asker's own, or the generated one.
        public var sql: String? { request?.sql ?? generated?.sql }
    }

    public static let category = "sqlquery"
    public static let initialState = State()
    /// The platform's own data: the only source of this version.
    public static let ownData = "chronicle"
    public static let question = TextLimit(characters: 1...2000)
    public static let statement = TextLimit(characters: 1...65_536)

    public static func streamID(_ queryID: UUID) -> StreamID { StreamID(category: category, id: queryID) }

    public static func decide(_ command: Command, state: State) throws -> [SqlQueryEvent] {
        switch command {
        case .request(let request):
            guard state.status == .absent else { throw DomainError(.conflict, code: .sqlQueryExists, "the query already exists") }
            // The caller checked the data source exists and is the asker's (it is another stream).
            guard request.datasourceID == ownData || UUID(uuidString: request.datasourceID) != nil else {
                throw DomainError(.notFound, code: .sqlDatasourceNotFound, "no data source \(request.datasourceID); \(ownData) is your own data")
            }
            switch (request.question, request.sql) {
            case (let question?, nil):
                try Self.question.check(question.trimmingCharacters(in: .whitespacesAndNewlines), field: "question", code: .sqlQueryInvalid)
            case (nil, let sql?):
                try statement.check(sql, field: "sql", code: .sqlQueryInvalid)
            default:
                throw DomainError(.invalid, code: .sqlQueryInvalid, "give a question or a sql statement, one of them")
            }
            return [.requested(request)]
        case .generate(let generated):
            try requirePending(state)
            guard state.sql == nil else { throw DomainError(.conflict, code: .sqlQueryEnded, "the query already has its statement") }
            return [.generated(generated)]
        case .reject(let rejected):
            try requirePending(state)
            return [.rejected(rejected)]
        case .execute(let executed):
            try requirePending(state)
            return [.executed(executed)]
        case .fail(let failed):
            try requirePending(state)
            return [.failed(failed)]
        }
    }

    public static func evolve(_ state: State, _ event: SqlQueryEvent) -> State {
        var state = state
        switch event {
        case .requested(let requested):
            state.status = .pending
            state.request = requested
        case .generated(let generated): state.generated = generated
        case .rejected(let rejected):
            state.status = .rejected
            state.rejected = rejected
        case .executed(let executed):
            state.status = .executed
            state.executed = executed
        case .failed(let failed):
            state.status = .failed
            state.failed = failed
        }
        return state
    }

    static func requirePending(_ state: State) throws {
        guard state.status != .absent else { throw DomainError(.notFound, code: .sqlQueryNotFound, "no such query") }
        guard state.status == .pending else { throw DomainError(.conflict, code: .sqlQueryEnded, "the query already ended (\(state.status.rawValue))") }
    }
}
