import Adapters
import Events
import Foundation
import Logging
import PostgresNIO

/// Text-to-SQL: the validator's throughput (parse and check), beside parsing alone; and the whole
/// execution path (binding, read-only transaction, cost gate, caps, rollback, reset) beside the
/// same SELECT run directly on the same server, one connection each, in the same run.
struct SqlBenchmark {
    let database: ChronicleDatabase
    let report: BenchReport
    let seconds: Double
    let logger: Logger

    static let statements = [
        "SELECT model, sum(cost) FROM agent_runs WHERE requested_at > now() - interval '7 days' GROUP BY model ORDER BY 2 DESC",
        "SELECT a.name, count(r.execution_id) FROM agents a LEFT JOIN agent_runs r ON r.agent_id = a.agent_id GROUP BY a.name",
        "SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) FROM agent_runs WHERE status = 'completed'",
        "WITH d AS (SELECT date_trunc('day', requested_at) AS day, count(*) AS n FROM agent_runs GROUP BY 1) SELECT day, n, avg(n) OVER (ORDER BY day ROWS 6 PRECEDING) FROM d",
    ]

    func run() async throws {
        let validator = SqlExecutor.ownDataValidator
        let parsed = measure { n in _ = SqlParser.parse(Self.statements[n % Self.statements.count]) }
        let checked = measure { n in _ = validator.check(Self.statements[n % Self.statements.count]) }
        report.emit("sql.parse.throughput", parsed, unit: "statements/s", ["statements": .number(Double(Self.statements.count))])
        report.emit("sql.validator.throughput", checked, unit: "statements/s", ["parse_only": .number(parsed)])

        let query = "SELECT n % 10 AS bucket, count(*) FROM generate_series(1, 1000) AS n GROUP BY 1 ORDER BY 1"
        var readerSettings = database.settings.with(username: "chronicle_sql_reader", password: nil)
        readerSettings.maxConnections = 1
        try await SqlExecutor.prepare(admin: database.client, readerRole: "chronicle_sql_reader", limits: .init(), logger: logger)
        let reader = readerSettings
        let direct = try await measureAsync {
            _ = try await database.client.query(PostgresQuery(unsafeSQL: query), logger: logger).collect()
        }
        let full = try await ChronicleDatabase.withRunning(reader, logger: logger) { readerDatabase in
            let executor = SqlExecutor(
                admin: database.client, reader: readerDatabase.client, readerRole: "chronicle_sql_reader", logger: logger)
            return try await measureAsync {
                guard validator.check(query).isEmpty else { throw SqlExecutor.Refusal(layer: "validator", reason: "refused") }
                _ = try await executor.run(query, as: .init(ownerID: "bench", tenantID: nil, isAdmin: false))
            }
        }
        report.emit("sql.direct.throughput", direct, unit: "queries/s", ["connections": .number(1)])
        report.emit("sql.path.throughput", full, unit: "queries/s", ["direct": .number(direct), "ratio": .number(full / direct)])
    }

    func measure(_ body: (Int) -> Void) -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        var n = 0
        while clock.now - start < .milliseconds(Int64(seconds * 1000)) {
            body(n)
            n += 1
        }
        let elapsed = clock.now - start
        return Double(n) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    func measureAsync(_ body: () async throws -> Void) async throws -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        var n = 0
        while clock.now - start < .milliseconds(Int64(seconds * 1000)) {
            try await body()
            n += 1
        }
        let elapsed = clock.now - start
        return Double(n) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }
}
