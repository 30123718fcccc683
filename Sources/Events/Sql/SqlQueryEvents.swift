import Foundation

/// Whose rows a query may read: the asker's own, or (an admin's question) the tenant's.
public enum SqlQueryScope: String, Codable, Sendable, Equatable {
    case owner, tenant
}

/// A question (or the asker's own SQL) over a data source. The `sql.generate` workers take it.
public struct SqlQueryRequested: DomainEvent {
    public static let eventType = "SqlQueryRequested"

    public var queryID: UUID
    public var ownerID: String
    public var tenantID: String?
    public var scope: SqlQueryScope
    /// `chronicle`: the platform's own data.
    public var datasourceID: String
    public var question: String?
    public var sql: String?
    public var requestedAt: Date

    public init(
        queryID: UUID, ownerID: String, tenantID: String?, scope: SqlQueryScope, datasourceID: String, question: String?, sql: String?,
        requestedAt: Date
    ) {
        self.queryID = queryID
        self.ownerID = ownerID
        self.tenantID = tenantID
        self.scope = scope
        self.datasourceID = datasourceID
        self.question = question
        self.sql = sql
        self.requestedAt = requestedAt
    }

    enum CodingKeys: String, CodingKey {
        case queryID = "queryId"
        case ownerID = "ownerId"
        case tenantID = "tenantId"
        case datasourceID = "datasourceId"
        case scope, question, sql, requestedAt
    }
}

/// A model (or the offline translator) wrote SQL for the question.
public struct SqlQueryGenerated: DomainEvent {
    public static let eventType = "SqlQueryGenerated"

    public var queryID: UUID
    public var sql: String
    public var model: String
    /// sha256 of the prompt sent, and of the schema it described.
    public var promptHash: String
    public var schemaHash: String
    public var generatedAt: Date

    public init(queryID: UUID, sql: String, model: String, promptHash: String, schemaHash: String, generatedAt: Date) {
        self.queryID = queryID
        self.sql = sql
        self.model = model
        self.promptHash = promptHash
        self.schemaHash = schemaHash
        self.generatedAt = generatedAt
    }

    enum CodingKeys: String, CodingKey {
        case queryID = "queryId"
        case sql, model, promptHash, schemaHash, generatedAt
    }
}

/// One validator rule that refused a statement.
public struct SqlRuleViolation: Codable, Sendable, Equatable {
    public var rule: String
    public var detail: String

    public init(rule: String, detail: String) {
        self.rule = rule
        self.detail = detail
    }
}

/// The validator refused the statement: nothing ran.
public struct SqlQueryRejected: DomainEvent {
    public static let eventType = "SqlQueryRejected"

    public var queryID: UUID
    public var sql: String
    public var violations: [SqlRuleViolation]
    public var rejectedAt: Date

    public init(queryID: UUID, sql: String, violations: [SqlRuleViolation], rejectedAt: Date) {
        self.queryID = queryID
        self.sql = sql
        self.violations = violations
        self.rejectedAt = rejectedAt
    }

    enum CodingKeys: String, CodingKey {
        case queryID = "queryId"
        case sql, violations, rejectedAt
    }
}

/// The statement ran; its result, capped.
public struct SqlQueryExecuted: DomainEvent {
    public static let eventType = "SqlQueryExecuted"

    public var queryID: UUID
    public var sql: String
    public var columns: [String]
    public var rows: [[JSONValue]]
    public var rowCount: Int
    public var truncated: Bool
    public var durationMs: Int
    public var cost: Double
    public var executedAt: Date

    public init(
        queryID: UUID, sql: String, columns: [String], rows: [[JSONValue]], rowCount: Int, truncated: Bool, durationMs: Int, cost: Double,
        executedAt: Date
    ) {
        self.queryID = queryID
        self.sql = sql
        self.columns = columns
        self.rows = rows
        self.rowCount = rowCount
        self.truncated = truncated
        self.durationMs = durationMs
        self.cost = cost
        self.executedAt = executedAt
    }

    enum CodingKeys: String, CodingKey {
        case queryID = "queryId"
        case sql, columns, rows, rowCount, truncated, durationMs, cost, executedAt
    }
}

/// The query could not be answered: no model for the question, or a layer below the validator
/// stopped it (named in `layer`).
public struct SqlQueryFailed: DomainEvent {
    public static let eventType = "SqlQueryFailed"

    public var queryID: UUID
    public var error: String
    public var layer: String
    public var failedAt: Date

    public init(queryID: UUID, error: String, layer: String, failedAt: Date) {
        self.queryID = queryID
        self.error = error
        self.layer = layer
        self.failedAt = failedAt
    }

    enum CodingKeys: String, CodingKey {
        case queryID = "queryId"
        case error, layer, failedAt
    }
}

/// The events of one query (stream `sqlquery-<id>`).
public enum SqlQueryEvent: EventFamily, Equatable {
    public static var registry: EventRegistry { .sql }

    case requested(SqlQueryRequested)
    case generated(SqlQueryGenerated)
    case rejected(SqlQueryRejected)
    case executed(SqlQueryExecuted)
    case failed(SqlQueryFailed)

    public var payload: any DomainEvent {
        switch self {
        case .requested(let event): event
        case .generated(let event): event
        case .rejected(let event): event
        case .executed(let event): event
        case .failed(let event): event
        }
    }

    public init?(payload: any DomainEvent) {
        switch payload {
        case let event as SqlQueryRequested: self = .requested(event)
        case let event as SqlQueryGenerated: self = .generated(event)
        case let event as SqlQueryRejected: self = .rejected(event)
        case let event as SqlQueryExecuted: self = .executed(event)
        case let event as SqlQueryFailed: self = .failed(event)
        default: return nil
        }
    }
}

extension EventRegistry {
    /// The stored event types of the Text-to-SQL module.
    public static let sql: EventRegistry = {
        var registry = EventRegistry()
        registry.register(SqlQueryRequested.self)
        registry.register(SqlQueryGenerated.self)
        registry.register(SqlQueryRejected.self)
        registry.register(SqlQueryExecuted.self)
        registry.register(SqlQueryFailed.self)
        registry.register(SqlDatasourceRegistered.self)
        registry.register(SqlDatasourceRemoved.self)
        return registry
    }()
}

extension IntegrationContract {
    /// Questions go to the `sql.generate` workers; outcomes go out on `events`.
    public static let sql: [IntegrationContract] = [
        IntegrationContract(eventType: SqlQueryRequested.eventType, exchange: "sql.generate", routingKey: "sql.generate", kind: .workMessage),
        IntegrationContract(eventType: SqlQueryExecuted.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "sql.query.executed"),
        IntegrationContract(eventType: SqlQueryRejected.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "sql.query.rejected"),
        IntegrationContract(eventType: SqlQueryFailed.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "sql.query.failed"),
    ]
}

/// An outside PostgreSQL database registered as a data source. Its credentials are not here:
/// they are sealed outside the log (`sql_datasource_credentials`).
public struct SqlDatasourceRegistered: DomainEvent {
    public static let eventType = "SqlDatasourceRegistered"

    public var datasourceID: UUID
    public var ownerID: String
    public var name: String
    public var host: String
    public var port: Int
    public var database: String
    public var username: String
    public var schemas: [String]
    public var registeredAt: Date

    public init(
        datasourceID: UUID, ownerID: String, name: String, host: String, port: Int, database: String, username: String, schemas: [String],
        registeredAt: Date
    ) {
        self.datasourceID = datasourceID
        self.ownerID = ownerID
        self.name = name
        self.host = host
        self.port = port
        self.database = database
        self.username = username
        self.schemas = schemas
        self.registeredAt = registeredAt
    }

    enum CodingKeys: String, CodingKey {
        case datasourceID = "datasourceId"
        case ownerID = "ownerId"
        case name, host, port, database, username, schemas, registeredAt
    }
}

/// The data source was removed; its sealed credentials were deleted with it.
public struct SqlDatasourceRemoved: DomainEvent {
    public static let eventType = "SqlDatasourceRemoved"

    public var datasourceID: UUID
    public var removedAt: Date

    public init(datasourceID: UUID, removedAt: Date) {
        self.datasourceID = datasourceID
        self.removedAt = removedAt
    }

    enum CodingKeys: String, CodingKey {
        case datasourceID = "datasourceId"
        case removedAt
    }
}

/// The events of one data source (stream `sqldatasource-<id>`).
public enum SqlDatasourceEvent: EventFamily, Equatable {
    public static var registry: EventRegistry { .sql }

    case registered(SqlDatasourceRegistered)
    case removed(SqlDatasourceRemoved)

    public var payload: any DomainEvent {
        switch self {
        case .registered(let event): event
        case .removed(let event): event
        }
    }

    public init?(payload: any DomainEvent) {
        switch payload {
        case let event as SqlDatasourceRegistered: self = .registered(event)
        case let event as SqlDatasourceRemoved: self = .removed(event)
        default: return nil
        }
    }
}
