import Events
import Foundation
import Logging
import PostgresNIO
import Projections

/// `AnalyticsQueries` over `agent_run_analytics` and `sandbox_run_analytics` (through their
/// views, so a rebuild's swap is invisible). Postgres computes every figure from the rows in one
/// statement per route: the groups and the total are grouping sets of the same scan, and the
/// percentiles are `percentile_disc` (nearest rank: a duration some run really took).
public struct AnalyticsReadModels: AnalyticsQueries {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    static let day = "to_char((requested_at AT TIME ZONE 'UTC')::date, 'YYYY-MM-DD')"

    public func usage(_ scope: AnalyticsScope, from: Date, to: Date, groupBy: UsageGrouping) async throws -> (groups: [JSONValue], total: JSONValue) {
        let key =
            switch groupBy {
            case .day: Self.day
            case .agent: "agent_id::text"
            case .model: "model"
            case .user: "owner_id"
            }
        return try await grouped(table: "agent_run_analytics", key: key, scope: scope, from: from, to: to, figures: """
            'runs', count(*),
            'completed', count(*) FILTER (WHERE status = 'completed'),
            'failed', count(*) FILTER (WHERE status IN ('failed', 'timed_out')),
            'timed_out', count(*) FILTER (WHERE status = 'timed_out'),
            'cancelled', count(*) FILTER (WHERE status = 'cancelled'),
            'unfinished', count(*) FILTER (WHERE status IN ('pending', 'running')),
            'model_calls', sum(model_calls),
            'tool_calls', sum(tool_calls),
            'prompt_tokens', sum(prompt_tokens),
            'completion_tokens', sum(completion_tokens),
            'total_tokens', sum(prompt_tokens + completion_tokens),
            'cost', sum(cost),
            'duration_ms_p50', percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ms) FILTER (WHERE status = 'completed'),
            'duration_ms_p95', percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms) FILTER (WHERE status = 'completed')
            """)
    }

    public func sandbox(_ scope: AnalyticsScope, from: Date, to: Date, groupBy: SandboxGrouping) async throws -> (groups: [JSONValue], total: JSONValue) {
        let key =
            switch groupBy {
            case .day: Self.day
            case .user: "owner_id"
            case .language: "language"
            case .status: "status"
            }
        return try await grouped(table: "sandbox_run_analytics", key: key, scope: scope, from: from, to: to, figures: """
            'runs', count(*),
            'completed', count(*) FILTER (WHERE status = 'completed'),
            'failed', count(*) FILTER (WHERE status = 'failed'),
            'timed_out', count(*) FILTER (WHERE status = 'timed_out'),
            'limit_exceeded', count(*) FILTER (WHERE status = 'limit_exceeded'),
            'unfinished', count(*) FILTER (WHERE status IN ('pending', 'running')),
            'limits_hit', (SELECT coalesce(json_object_agg(hit.name, hit.runs), '{}'::json)
                           FROM (SELECT name, count(*) AS runs FROM unnest(array_agg(limit_name)) AS l(name)
                                 WHERE name IS NOT NULL GROUP BY name) AS hit),
            'cpu_ms', coalesce(sum(cpu_ms), 0),
            'duration_ms_p50', percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ms),
            'duration_ms_p95', percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms),
            'peak_memory_bytes_max', max(peak_memory_bytes),
            'peak_memory_bytes_p95', percentile_disc(0.95) WITHIN GROUP (ORDER BY peak_memory_bytes)
            """)
    }

    /// One scan: a row per group and one for the whole range (the empty grouping set).
    func grouped(table: String, key: String, scope: AnalyticsScope, from: Date, to: Date, figures: String) async throws -> (groups: [JSONValue], total: JSONValue) {
        let (column, value) =
            switch scope {
            case .owner(let owner): ("owner_id", owner)
            case .tenant(let tenant): ("tenant_id", tenant)
            }
        return try await readModel(orIfAbsent: ([], Self.emptyTotal)) {
            let rows = try await client.query("""
                SELECT GROUPING(key) = 1 AS is_total, json_build_object('key', key, \(unescaped: figures))::text
                FROM (SELECT \(unescaped: key) AS key, * FROM \(unescaped: table)
                      WHERE \(unescaped: column) = \(value) AND requested_at >= \(from) AND requested_at < \(to)) AS runs
                GROUP BY GROUPING SETS ((key), ())
                ORDER BY is_total, key
                """, logger: logger)
            var groups: [JSONValue] = []
            var total = Self.emptyTotal
            for try await (isTotal, text) in rows.decode((Bool, String).self) {
                guard case .object(var object) = try EventCoding.decode(JSONValue.self, from: Data(text.utf8)) else { continue }
                if case .string(let key)? = object["key"] { object["key"] = .string(PostgresText.decode(key)) }
                if isTotal {
                    object["key"] = nil
                    total = .object(object)
                } else {
                    groups.append(.object(object))
                }
            }
            return (groups, total)
        }
    }

    /// No run in range: zero runs (the grouping set of no rows has no row at all).
    static let emptyTotal: JSONValue = .object(["runs": .number(0)])
}
