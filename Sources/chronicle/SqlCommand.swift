import Adapters
import ArgumentParser
import CLISupport
import Commands
import Events
import Foundation
import PostgresNIO

struct SqlCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sql", abstract: "Text-to-SQL: try the current validator on the statements in the log.",
        subcommands: [RevalidateSql.self])
}

struct RevalidateSql: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revalidate",
        abstract: "Check every logged SQL statement against the current validator; print, as JSON lines, each whose verdict would change, then a summary.")

    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Only statements recorded at or after this RFC 3339 time") var since: String?

    func run() async throws {
        let logger = try connection.logger("chronicle.sql", default: .critical)
        var from = Date(timeIntervalSince1970: 0)
        if let since {
            guard let date = Timestamp.parse(since) else { throw ValidationError("--since must be an RFC 3339 time, e.g. 2026-11-30T00:00:00Z") }
            from = date
        }
        let validator = SqlExecutor.ownDataValidator
        let start = from
        let (statements, verdicts) = try await ChronicleDatabase.withRunning(try connection.postgres(), logger: logger) { database in
            var statements: [String: String] = [:]
            var verdicts: [String: Bool] = [:]
            var after: Int64 = 0
            while true {
                let rows = try await database.client.query("""
                    SELECT global_position, stream_id, event_type, data::text FROM events
                    WHERE event_type IN ('SqlQueryRequested', 'SqlQueryGenerated', 'SqlQueryRejected', 'SqlQueryExecuted')
                      AND global_position > \(after) AND recorded_at >= \(start)
                    ORDER BY global_position LIMIT 1000
                    """, logger: logger)
                var count = 0
                for try await (position, stream, type, text) in rows.decode((Int64, String, String, String).self) {
                    count += 1
                    after = position
                    let data = Data(text.utf8)
                    switch type {
                    case SqlQueryRequested.eventType:
                        if let sql = try? EventCoding.decode(SqlQueryRequested.self, from: data).sql { statements[stream] = sql }
                    case SqlQueryGenerated.eventType:
                        if let generated = try? EventCoding.decode(SqlQueryGenerated.self, from: data) { statements[stream] = generated.sql }
                    case SqlQueryRejected.eventType: verdicts[stream] = false
                    default: verdicts[stream] = true
                    }
                }
                if count < 1000 { break }
            }
            return (statements, verdicts)
        }
        var nowRefused = 0, nowAllowed = 0, unchanged = 0
        for (stream, sql) in statements.sorted(by: { $0.key < $1.key }) {
            guard let was = verdicts[stream] else { continue }
            let violations = validator.check(sql)
            let now = violations.isEmpty
            if now == was {
                unchanged += 1
                continue
            }
            if now { nowAllowed += 1 } else { nowRefused += 1 }
            printJSON(.object([
                "query_id": .string(String(stream.dropFirst("\(SqlQueryDecider.category)-".count))), "sql": .string(sql),
                "was": .string(was ? "accepted" : "rejected"), "now": .string(now ? "accepted" : "rejected"),
                "violations": .array(violations.map { .object(["rule": .string($0.rule), "detail": .string($0.detail)]) }),
            ]))
        }
        printJSON(.object([
            "checked": .number(Double(nowRefused + nowAllowed + unchanged)), "now_refused": .number(Double(nowRefused)),
            "now_allowed": .number(Double(nowAllowed)), "unchanged": .number(Double(unchanged)),
        ]))
    }
}
