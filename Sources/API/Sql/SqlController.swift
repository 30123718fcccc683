import Commands
import Events
import Foundation
import Hummingbird

/// Text-to-SQL under `/api/v1/sql`: a question (or the asker's own SQL) over a data source
/// becomes a query the `sql.generate` workers answer; its status, statement, verdict and result
/// are read from its stream. Owner-scoped: another owner's query answers 404.
public struct SqlController: Sendable {
    let queries: CommandHandler<SqlQueryDecider>
    /// The platform's own data, introspected (views, columns, comments, and the schema's hash).
    let schema: @Sendable () async throws -> SqlSchema
    /// Registered outside databases; nil where this process has none.
    let datasources: (any SqlDatasourceRegistry)?

    public init(store: any EventStore, schema: @escaping @Sendable () async throws -> SqlSchema, datasources: (any SqlDatasourceRegistry)? = nil) {
        queries = CommandHandler(store: store)
        self.schema = schema
        self.datasources = datasources
    }

    public func addRoutes(to group: RouterGroup<ChronicleRequestContext>) {
        group.post("queries", use: ask)
        group.get("queries/:id", use: show)
        group.get("datasources", use: listDatasources)
        group.post("datasources", use: register)
        group.delete("datasources/:id", use: remove)
        group.get("datasources/:id/schema", use: datasourceSchema)
    }

    static let notFound = Problem(.notFound, code: "sql.query_not_found", detail: "no such query")
    static let sourceNotFound = Problem(.notFound, code: "sql.datasource_not_found", detail: "no such data source; chronicle is your own data")

    struct Ask: Decodable {
        var datasourceID: String?
        var question: String?
        var sql: String?

        enum CodingKeys: String, CodingKey {
            case question, sql
            case datasourceID = "datasource_id"
        }
    }

    /// `{datasource_id?, question | sql}` → 202 `{query_id, status}`.
    @Sendable func ask(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        let body = try await request.decode(as: Ask.self, context: context)
        let source = body.datasourceID ?? SqlQueryDecider.ownData
        if source != SqlQueryDecider.ownData { _ = try await owned(source, principal) }
        let command = try CommandContext.from(request, context: context)
        let queryID = command.derivedID("sql-query")
        let result = try await queries.handle(
            .request(SqlQueryRequested(
                queryID: queryID, ownerID: principal.userID, tenantID: principal.tenantID, scope: principal.isAdmin ? .tenant : .owner,
                datasourceID: source, question: body.question, sql: body.sql, requestedAt: command.now)),
            on: SqlQueryDecider.streamID(queryID), context: command)
        let id = queryID.uuidString.lowercased()
        return try Reply.json(
            JSONValue.object(["query_id": .string(id), "status": .string(result.state.status.rawValue)]), status: .accepted,
            location: "/api/v1/sql/queries/\(id)", version: result.streamVersion, position: result.append?.checkpoint, context: context)
    }

    /// The query as its stream tells it.
    @Sendable func show(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let id = try Reply.pathID(context, "id", missing: Self.notFound)
        let (state, version) = try await queries.load(SqlQueryDecider.streamID(id).description)
        guard let asked = state.request, principal.mayAccess(owner: asked.ownerID) else { throw Self.notFound }
        var verdict: JSONValue = .null
        if let rejected = state.rejected {
            verdict = .object([
                "accepted": .bool(false),
                "violations": .array(rejected.violations.map { .object(["rule": .string($0.rule), "detail": .string($0.detail)]) }),
            ])
        } else if state.executed != nil {
            verdict = .object(["accepted": .bool(true), "violations": .array([])])
        }
        var result: JSONValue = .null
        if let executed = state.executed {
            result = .object([
                "columns": .array(executed.columns.map(JSONValue.string)), "rows": .array(executed.rows.map(JSONValue.array)),
                "row_count": .number(Double(executed.rowCount)), "truncated": .bool(executed.truncated),
                "duration_ms": .number(Double(executed.durationMs)), "cost": .number(executed.cost),
            ])
        }
        let error: JSONValue =
            state.failed.map { .object(["layer": .string($0.layer), "message": .string($0.error)]) } ?? .null
        return try Reply.json(
            JSONValue.object([
                "query_id": .string(id.uuidString.lowercased()), "status": .string(state.status.rawValue),
                "datasource_id": .string(asked.datasourceID), "question": asked.question.map(JSONValue.string) ?? .null,
                "sql": state.sql.map(JSONValue.string) ?? .null, "model": state.generated.map { .string($0.model) } ?? .null,
                "schema_hash": state.generated.map { .string($0.schemaHash) } ?? .null,
                "verdict": verdict, "result": result, "error": error, "requested_at": .string(Timestamp.format(asked.requestedAt)),
            ]), status: .ok, version: version, context: context)
    }

    /// A registered source the principal owns (an admin: any), or 404.
    func owned(_ id: String, _ principal: Principal) async throws -> SqlDatasourceRegistered {
        guard let datasources, let uuid = UUID(uuidString: id), let registered = try await datasources.registration(uuid),
            principal.mayAccess(owner: registered.ownerID)
        else { throw Self.sourceNotFound }
        return registered
    }

    static func describe(_ registered: SqlDatasourceRegistered) -> JSONValue {
        .object([
            "id": .string(registered.datasourceID.uuidString.lowercased()), "name": .string(registered.name),
            "schemas": .array(registered.schemas.map(JSONValue.string)), "host": .string(registered.host), "port": .number(Double(registered.port)),
            "database": .string(registered.database), "username": .string(registered.username),
            "registered_at": .string(Timestamp.format(registered.registeredAt)),
        ])
    }

    @Sendable func listDatasources(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        _ = try context.requirePrincipal()
        return try Reply.json(
            JSONValue.object(["items": .array([.object([
                "id": .string(SqlQueryDecider.ownData), "name": .string("Your data in Chronicle"), "schemas": .array([.string("chronicle_data")]),
            ])])]), status: .ok, context: context)
    }

    struct Register: Decodable {
        var name: String
        var url: String
        var schemas: [String]
    }

    /// `{name, url, schemas}` → 201 with the source (never its credentials). Checked first: the
    /// database is reachable, and the role is no superuser and can write nothing it exposes.
    @Sendable func register(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        guard let datasources else {
            throw Problem(.unprocessableContent, code: "sql.datasource_invalid", detail: "outside data sources are not available in this process")
        }
        let body = try await request.decode(as: Register.self, context: context)
        let command = try CommandContext.from(request, context: context)
        let registered = try await datasources.register(
            id: command.derivedID("sql-datasource"), name: body.name, url: body.url, schemas: body.schemas, owner: principal.userID, context: command)
        let id = registered.datasourceID.uuidString.lowercased()
        return try Reply.json(Self.describe(registered), status: .created, location: "/api/v1/sql/datasources/\(id)/schema", context: context)
    }

    @Sendable func remove(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        let registered = try await owned(context.parameters.get("id") ?? "", principal)
        try await datasources?.remove(registered.datasourceID, context: try CommandContext.from(request, context: context))
        return Response(status: .noContent)
    }

    @Sendable func datasourceSchema(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let id = context.parameters.get("id") ?? ""
        let schema: SqlSchema
        if id == SqlQueryDecider.ownData {
            schema = try await self.schema()
        } else {
            let registered = try await owned(id, principal)
            do {
                schema = try await datasources!.schema(registered.datasourceID)
            } catch let refusal as SqlRunRefusal {
                throw Problem(.unprocessableContent, code: "sql.datasource_unreachable", detail: refusal.reason)
            }
        }
        return try Reply.json(
            JSONValue.object(["datasource_id": .string(id), "schema_hash": .string(schema.hash), "relations": schema.json]), status: .ok,
            context: context)
    }
}

extension SqlController {
    /// Its routes, under `/api/v1/sql`.
    public var mount: RouteMount { RouteMount("sql", add: { addRoutes(to: $0) }) }
}
