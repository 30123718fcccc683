import Events
import Foundation
import Hummingbird
import Projections

/// The analytics routes under `/api/v1/analytics`: agent usage and sandbox runs over a time
/// range, grouped, with exact figures. A member sees their own runs, an admin the tenant's.
public struct AnalyticsController: Sendable {
    let queries: any AnalyticsQueries

    public init(queries: any AnalyticsQueries) {
        self.queries = queries
    }

    public func addRoutes(to group: RouterGroup<ChronicleRequestContext>) {
        group.get("usage", use: usage)
        group.get("sandbox", use: sandbox)
    }

    /// The longest range one request may cover.
    static let maximumDays = 3660

    struct Answer: Encodable {
        var from: Date
        var to: Date
        var groupBy: String
        var scope: String
        var groups: [JSONValue]
        var total: JSONValue

        enum CodingKeys: String, CodingKey {
            case from, to, scope, groups, total
            case groupBy = "group_by"
        }

        func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(Timestamp.format(from), forKey: .from)
            try container.encode(Timestamp.format(to), forKey: .to)
            try container.encode(groupBy, forKey: .groupBy)
            try container.encode(scope, forKey: .scope)
            try container.encode(groups, forKey: .groups)
            try container.encode(total, forKey: .total)
        }
    }

    /// `?from=` and `?to=`: a date (`2026-11-30`, midnight UTC) or an RFC 3339 time; `to` defaults
    /// to now and `from` to 30 days before it. The range is [from, to).
    static func range(_ request: Request, now: Date = Date()) throws -> (from: Date, to: Date) {
        func parse(_ name: String) throws -> Date? {
            guard let text = request.uri.queryParameters.get(name) else { return nil }
            let full = text.count == 10 ? text + "T00:00:00Z" : text
            guard let date = Timestamp.parse(full) else {
                throw Problem(.badRequest, code: "request.invalid_query", detail: "\(name) must be a date (2026-11-30) or an RFC 3339 time")
            }
            return date
        }
        let to = try parse("to") ?? now
        let from = try parse("from") ?? to.addingTimeInterval(-30 * 86_400)
        guard from < to else { throw Problem(.badRequest, code: "request.invalid_query", detail: "from must be before to") }
        guard to.timeIntervalSince(from) <= Double(maximumDays) * 86_400 else {
            throw Problem(.badRequest, code: "request.invalid_query", detail: "a range covers at most \(maximumDays) days")
        }
        return (from, to)
    }

    static func grouping<G: RawRepresentable & CaseIterable>(_ request: Request, default value: G) throws -> G where G.RawValue == String {
        guard let text = request.uri.queryParameters.get("group_by") else { return value }
        guard let grouping = G(rawValue: String(text)) else {
            throw Problem(
                .badRequest, code: "request.invalid_query",
                detail: "group_by must be one of \(G.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return grouping
    }

    static func scope(_ principal: Principal) -> (AnalyticsScope, String) {
        principal.isAdmin ? (.tenant(principal.tenantID), "tenant") : (.owner(principal.userID), "user")
    }

    /// `?group_by=day|agent|model|user` (day).
    @Sendable func usage(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        try await answer(request, context, default: UsageGrouping.day) { try await queries.usage($0, from: $1, to: $2, groupBy: $3) }
    }

    /// `?group_by=day|user|language|status` (day).
    @Sendable func sandbox(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        try await answer(request, context, default: SandboxGrouping.day) { try await queries.sandbox($0, from: $1, to: $2, groupBy: $3) }
    }

    /// The range, the grouping and the caller's scope from the request, then the read.
    func answer<G: RawRepresentable & CaseIterable>(
        _ request: Request, _ context: ChronicleRequestContext, default grouping: G,
        _ read: (AnalyticsScope, Date, Date, G) async throws -> (groups: [JSONValue], total: JSONValue)
    ) async throws -> Response where G.RawValue == String {
        let principal = try context.requirePrincipal()
        let (from, to) = try Self.range(request)
        let grouping = try Self.grouping(request, default: grouping)
        let (scope, name) = Self.scope(principal)
        let (groups, total) = try await read(scope, from, to, grouping)
        return try Reply.json(
            Answer(from: from, to: to, groupBy: grouping.rawValue, scope: name, groups: groups, total: total), status: .ok, context: context)
    }
}

extension AnalyticsController {
    /// Its routes, under `/api/v1/analytics`.
    public var mount: RouteMount { RouteMount("analytics", add: { addRoutes(to: $0) }) }
}
