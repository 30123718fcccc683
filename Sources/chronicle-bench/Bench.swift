import CLISupport
import Adapters
import ArgumentParser
import Commands
import Composition
import Events
import Foundation
import Logging
import Metrics
import Synchronization

/// `make bench`: measured figures, one JSON object per line. Runs in its own throwaway database on
/// the configured server and drops it after. Every line carries the machine's load and the
/// server's durability settings, so figures are never read without their conditions.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "chronicle-bench", abstract: "Run the benchmarks and print JSON lines.")

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "Seconds per scenario") var seconds: Double = 5

    @Option(help: "Events to rebuild a read model from") var rebuildEvents: Int = 1_000_000

    @Option(help: "Integration events for the relay figure") var relayEvents: Int = 20_000

    @Option(name: .customLong("migrations-dir")) var migrationsDir: String?

    @Option(help: "A Postgres with fsync and synchronous commit on, for the append figures (make bench starts one); default: the --database-url server")
    var durablePostgresURL: String?

    @Option(help: "Concurrent connections of the HTTP load generator") var connections: Int = 32

    @Option(help: "Only these groups, comma-separated: eventstore, readside, api, live, body, sandbox, personas, sql, knowledge, quality (default: all)") var only: String?

    func validate() throws {
        guard seconds > 0, seconds <= 300 else { throw ValidationError("--seconds must be in (0, 300]") }
        guard (1_000...10_000_000).contains(rebuildEvents) else { throw ValidationError("--rebuild-events must be 1000 to 10000000") }
        guard (100...1_000_000).contains(relayEvents) else { throw ValidationError("--relay-events must be 100 to 1000000") }
        guard (1...1000).contains(connections) else { throw ValidationError("--connections must be 1 to 1000") }
        if let unknown = groups.subtracting(Self.allGroups).first { throw ValidationError("unknown group '\(unknown)'; groups are \(Self.allGroups.sorted().joined(separator: ", "))") }
    }

    static let allGroups: Set<String> = ["eventstore", "readside", "api", "live", "body", "sandbox", "personas", "sql", "knowledge", "quality"]

    var groups: Set<String> {
        guard let only else { return Self.allGroups }
        return Set(only.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
    }

    func run() async throws {
        let logger = try connection.logger("chronicle.bench", default: .critical)
        let base = try connection.postgres()
        let migrator = try locateMigrator(migrationsDir)
        let name = "chronicle_bench_\(ProcessInfo.processInfo.processIdentifier)"
        // The sandbox needs no database; it runs first, on a quiet machine.
        if groups.contains("sandbox") {
            try await SandboxBenchmark(report: BenchReport(durability: [:]), seconds: max(2, Int(seconds)), logger: logger).run()
        }
        // In-process, no database: what refusing a nested body costs beside decoding it.
        if groups.contains("body") { RequestBodyBenchmark(report: BenchReport(durability: [:])).run() }
        // In-process, no database: the template engine beside Jinja2.
        if groups.contains("personas") { try PersonaBenchmark(report: BenchReport(durability: [:]), seconds: max(2, Int(seconds))).run() }
        // In-process, no database: embedding, chunking, and exact vector search beside NumPy.
        if groups.contains("knowledge") { try await KnowledgeBenchmark(report: BenchReport(durability: [:]), seconds: max(2, Int(seconds))).run() }
        guard !groups.isDisjoint(with: ["eventstore", "readside", "api", "live", "sql", "knowledge", "quality"]) else { return }
        if groups.contains("eventstore") {
            // Appends are paid for per commit: measured where commits are durable.
            let durable = try durablePostgresURL.map { try PostgresSettings(url: $0) } ?? base
            try await withBenchDatabase(durable, name: name, migrator: migrator, logger: logger) { database, settings in
                let report = BenchReport(durability: try await database.durabilitySettings())
                try await EventStoreBenchmark(
                    database: database, settings: settings, duration: .milliseconds(Int64(seconds * 1000)), report: report
                ).run()
            }
        }
        if !groups.isDisjoint(with: ["readside", "sql"]) {
            try await withBenchDatabase(base, name: name, migrator: migrator, logger: logger) { database, settings in
                let report = BenchReport(durability: try await database.durabilitySettings())
                if groups.contains("sql") {
                    try await SqlBenchmark(database: database, report: report, seconds: max(2, seconds), logger: logger).run()
                }
                if groups.contains("readside") {
                    let platform = try ChronicleApp.platform(postgres: database, settings: Settings(), logger: logger)
                    try await ReadSideBenchmark(
                        database: database, settings: settings, platform: platform, report: report, rebuildEvents: rebuildEvents,
                        latencySeconds: max(3, Int(seconds * 2)), relayEvents: relayEvents
                    ).run()
                }
            }
        }
        // The API on a database of its own: after a million seeded events its projectors would
        // spend the whole run catching up.
        if groups.contains("api") {
            // The command routes' ceiling, on a database of its own too: its events would
            // otherwise keep the server's projectors busy during the GET runs.
            let ceiling = Mutex(0.0)
            try await withBenchDatabase(base, name: "\(name)_api_append", migrator: migrator, logger: logger) { database, _ in
                let rate = try await EventStoreBenchmark.appendRate(database, writers: connections, duration: .seconds(Int64(max(2, Int(seconds)))))
                ceiling.withLock { $0 = rate }
            }
            let appendCeiling = ceiling.withLock { $0 }
            try await withBenchDatabase(base, name: "\(name)_api", migrator: migrator, logger: logger) { database, s in
                let report = BenchReport(durability: try await database.durabilitySettings())
                let password = s.password.map { ":" + ($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0) } ?? ""
                var api = AgentAPIBenchmark(
                    databaseURL: "postgres://\(s.username)\(password)@\(s.host):\(s.port)/\(s.database)?sslmode=disable", report: report,
                    seconds: max(2, Int(seconds)), connections: connections, appendCeiling: appendCeiling)
                try await api.run()
            }
        }
        // Knowledge's keyword search beside bm25s, on a database of its own.
        if groups.contains("knowledge") {
            try await withBenchDatabase(base, name: "\(name)_knowledge", migrator: migrator, logger: logger) { database, _ in
                let report = BenchReport(durability: try await database.durabilitySettings())
                try await KnowledgeKeywordBenchmark(database: database, report: report, logger: logger).run()
            }
        }
        // Knowledge's retrieval quality on the Python library reference, beside bm25s.
        if groups.contains("quality") {
            try await withBenchDatabase(base, name: "\(name)_quality", migrator: migrator, logger: logger) { database, _ in
                try await KnowledgeQualityBenchmark(database: database, report: BenchReport(durability: [:]), logger: logger).run()
            }
        }
        // The live workflow socket on two processes, on a database of its own.
        if groups.contains("live") {
            try await withBenchDatabase(base, name: "\(name)_live", migrator: migrator, logger: logger) { database, s in
                let report = BenchReport(durability: try await database.durabilitySettings())
                let password = s.password.map { ":" + ($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0) } ?? ""
                try await WorkflowLiveBenchmark(
                    databaseURL: "postgres://\(s.username)\(password)@\(s.host):\(s.port)/\(s.database)?sslmode=disable", report: report,
                    seconds: max(2, Int(seconds))
                ).run()
            }
        }
    }
}

/// Runs `body` on a throwaway database `name` on `server`, migrated, dropped afterwards.
func withBenchDatabase(
    _ server: PostgresSettings, name: String, migrator: Migrator, logger: Logger,
    _ body: @Sendable (ChronicleDatabase, PostgresSettings) async throws -> Void
) async throws {
    try await ChronicleDatabase.withRunning(server, logger: logger) { admin in
        try await admin.dropDatabase(name)
        try await admin.createDatabase(name)
        do {
            try await ChronicleDatabase.withRunning(server.with(database: name), logger: logger) { database in
                try await database.migrate(migrator)
                try await body(database, server.with(database: name))
            }
        } catch {
            try? await admin.dropDatabase(name)
            throw error
        }
        try await admin.dropDatabase(name)
    }
}

/// Prints figures with their conditions.
struct BenchReport: Sendable {
    let durability: [String: String]

    func emit(_ metric: String, _ value: Double, unit: String, _ extra: [String: JSONValue] = [:]) {
        var fields: [String: JSONValue] = [
            "metric": .string(metric), "value": .number((value * 100).rounded() / 100), "unit": .string(unit),
            "load_1m": .number(Self.loadAverage()), "cores": .number(Double(ProcessInfo.processInfo.activeProcessorCount)),
        ]
        for (key, value) in durability { fields["pg_\(key)"] = .string(value) }
        for (key, value) in extra { fields[key] = value }
        let line = (try? EventCoding.encode(JSONValue.object(fields))).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    static func loadAverage() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8),
            let first = text.split(separator: " ").first, let value = Double(first)
        else { return -1 }
        return value
    }
}

/// Latency samples in nanoseconds.
struct Latencies {
    var samples: [UInt64] = []

    mutating func add(_ duration: Duration) {
        samples.append(UInt64(duration.components.seconds) * 1_000_000_000 + UInt64(duration.components.attoseconds / 1_000_000_000))
    }

    func percentileMs(_ p: Double) -> Double {
        guard !samples.isEmpty else { return 0 }
        let sorted = samples.sorted()
        let index = min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)
        return Double(sorted[max(0, index)]) / 1_000_000
    }
}
