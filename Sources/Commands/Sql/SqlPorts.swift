import Events
import Foundation

/// The validator, as the worker uses it (Adapters implements it on libpg_query).
public protocol SqlValidating: Sendable {
    func violations(of sql: String) -> [SqlRuleViolation]
}

/// A run's result, as the worker records it.
public struct SqlRunResult: Sendable, Equatable {
    public var columns: [String]
    public var rows: [[JSONValue]]
    public var rowCount: Int
    public var truncated: Bool
    public var durationMs: Int
    public var cost: Double

    public init(columns: [String], rows: [[JSONValue]], rowCount: Int, truncated: Bool, durationMs: Int, cost: Double) {
        self.columns = columns
        self.rows = rows
        self.rowCount = rowCount
        self.truncated = truncated
        self.durationMs = durationMs
        self.cost = cost
    }
}

/// A layer below the validator stopped the statement.
public struct SqlRunRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    public var layer: String
    public var reason: String
    /// The database's SQLSTATE, when it refused.
    public var code: String?

    public init(layer: String, reason: String, code: String? = nil) {
        self.layer = layer
        self.reason = reason
        self.code = code
    }

    public var description: String { "\(layer): \(reason)" }
}

/// Registered outside databases, as the routes use them (Adapters implements it).
public protocol SqlDatasourceRegistry: Sendable {
    func register(id: UUID, name: String, url: String, schemas: [String], owner: String, context: CommandContext) async throws -> SqlDatasourceRegistered
    func registration(_ id: UUID) async throws -> SqlDatasourceRegistered?
    func remove(_ id: UUID, context: CommandContext) async throws
    func schema(_ id: UUID) async throws -> SqlSchema
}
