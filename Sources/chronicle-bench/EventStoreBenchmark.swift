import CLISupport
import Adapters
import Commands
import Events
import Foundation

/// Append throughput and latency of the Postgres event store, beside pgbench's raw one-row INSERT
/// of the same row shape into the same server with as many clients, measured in the same run. Run
/// on the benchmark's own server with fsync and synchronous commit on (`make bench` starts it).
struct EventStoreBenchmark {
    let database: ChronicleDatabase
    let settings: PostgresSettings
    let duration: Duration
    let report: BenchReport

    func run() async throws {
        let payload = Data(#"{"agent_id":"00000000-0000-0000-0000-000000000000","instructions":"benchmark payload of roughly three hundred bytes: the size of a typical small domain event with a few fields and some text in it, padded out with words so that it is realistic rather than tiny, as event payloads usually are."}"#.utf8)
        let metadata = EventMetadata(correlationID: "bench", causationID: "bench", commandID: "bench", userID: "bench", tenantID: "bench")

        try await appendScenarios([(1, 1)], payload: payload, metadata: metadata)
        let before = database.eventStore.groupCommitStats
        let grouped = try await appendScenarios([(8, 1)], payload: payload, metadata: metadata)[0]
        let after = database.eventStore.groupCommitStats
        report.emit("eventstore.group_commit.average_group", Double(after.appends - before.appends) / Double(max(1, after.groups - before.groups)),
            unit: "appends", ["writers": .number(8), "largest": .number(Double(after.largest))])
        try await appendScenarios([(32, 1), (1, 100), (8, 100)], payload: payload, metadata: metadata)
        // The same one-event appends, each its own statement and commit: what group commit buys.
        let alone = try await appendScenarios([(8, 1)], payload: payload, metadata: metadata, groupCommit: false)[0]
        let raw = try await rawInsertCeiling(payload: payload, metadata: metadata, clients: 8)
        let tags: [String: JSONValue] = ["writers": .number(8), "events_per_append": .number(1), "peer": .string("pgbench raw one-row INSERT, 8 clients")]
        report.emit("eventstore.append.vs_raw_insert", grouped / raw, unit: "ratio", tags)
        report.emit("eventstore.append.no_group_commit.vs_raw_insert", alone / raw, unit: "ratio", tags)
        try await chainCost(payload: payload, metadata: metadata)
        try await commandScenario()
    }

    /// One-event appends per second from `writers` concurrent writers for `duration`.
    static func appendRate(_ database: ChronicleDatabase, writers: Int, duration: Duration) async throws -> Double {
        let payload = Data(#"{"name":"bench","instructions":"Answer briefly."}"#.utf8)
        let bench = EventStoreBenchmark(database: database, settings: database.settings, duration: duration, report: BenchReport(durability: [:]))
        return try await bench.appendScenarios([(writers, 1)], payload: payload, metadata: EventMetadata(userID: "bench"), quiet: true)[0]
    }

    /// pgbench inserting one row per transaction into a copy of the events table (same columns,
    /// defaults and indexes, none of its triggers), with the same payload and metadata.
    private func rawInsertCeiling(payload: Data, metadata: EventMetadata, clients: Int) async throws -> Double {
        try await database.execute("""
            DROP TABLE IF EXISTS bench_raw_events;
            CREATE TABLE bench_raw_events (LIKE events INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES)
            """)
        func literal(_ data: Data) -> String { "'" + String(decoding: data, as: UTF8.self).replacingOccurrences(of: "'", with: "''") + "'" }
        let script = """
            INSERT INTO bench_raw_events (stream_id, stream_version, event_id, event_type, schema_version, data, metadata, hash) \
            VALUES ('raw-' || gen_random_uuid()::text, 1, gen_random_uuid(), 'BenchmarkEvent', 1, \
            \(literal(payload))::jsonb, \(literal(try EventCoding.encode(metadata)))::jsonb, '\\x'::bytea);

            """
        let seconds = max(2, Int(duration.components.seconds))
        let tps = try Pgbench(settings: settings).tps(script: script, clients: clients, seconds: seconds)
        report.emit("postgres.pgbench_raw_insert.throughput", tps, unit: "rows/s", [
            "clients": .number(Double(clients)), "seconds": .number(Double(seconds)), "row": .string("events' columns and indexes"),
        ])
        return tps
    }

    /// What the hash chain costs: the same appends with and without it, alternated twice so that
    /// neither always runs on the warmer server. Unchained appends store an empty hash, on the
    /// benchmark's own database only.
    private func chainCost(payload: Data, metadata: EventMetadata) async throws {
        for (writers, batch) in [(8, 1), (8, 100)] {
            var rates: [Bool: [Double]] = [:]
            for chained in [false, true, false, true] {
                let rate = try await appendScenarios(
                    [(writers, batch)], payload: payload, metadata: metadata, chained: chained, quiet: true)[0]
                rates[chained, default: []].append(rate)
            }
            let with = rates[true]!.reduce(0, +) / 2, without = rates[false]!.reduce(0, +) / 2
            let tags: [String: JSONValue] = ["writers": .number(Double(writers)), "events_per_append": .number(Double(batch))]
            report.emit("eventstore.append.chained.throughput", with, unit: "events/s", tags)
            report.emit("eventstore.append.unchained.throughput", without, unit: "events/s", tags)
            report.emit("eventstore.append.chain_cost", (1 - with / without) * 100, unit: "%", tags)
        }
    }

    @discardableResult
    func appendScenarios(
        _ shapes: [(Int, Int)], payload: Data, metadata: EventMetadata, chained: Bool = true, groupCommit: Bool = true, quiet: Bool = false
    ) async throws -> [Double] {
        let store =
            chained && groupCommit
            ? database.eventStore
            : PostgresEventStore(
                client: database.client, logger: database.eventStore.logger, signal: database.eventStore.signal, chained: chained,
                groupCommit: groupCommit)
        var rates: [Double] = []
        for (writers, batch) in shapes {
            let (events, latencies, elapsed) = try await measure(writers: writers) { _ in
                let stream = "bench-\(UUID().uuidString.lowercased())"
                let newEvents = (0..<batch).map { _ in
                    NewEvent(eventID: UUID(), eventType: "BenchmarkEvent", schemaVersion: 1, data: payload, metadata: metadata)
                }
                _ = try await store.append(to: stream, expected: .noStream, events: newEvents)
                return batch
            }
            rates.append(Double(events) / elapsed)
            if quiet { continue }
            let tags: [String: JSONValue] = [
                "writers": .number(Double(writers)), "events_per_append": .number(Double(batch)),
                "seconds": .number(elapsed), "appends": .number(Double(latencies.samples.count)), "group_commit": .bool(groupCommit),
            ]
            report.emit("eventstore.append.throughput", Double(events) / elapsed, unit: "events/s", tags)
            report.emit("eventstore.append.latency.p50", latencies.percentileMs(0.50), unit: "ms", tags)
            report.emit("eventstore.append.latency.p99", latencies.percentileMs(0.99), unit: "ms", tags)
        }
        return rates
    }

    private func commandScenario() async throws {
        // The whole command path: idempotency probe, load, decide, append with expected version.
        let handler = CommandHandler<AgentDecider>(store: database.eventStore)
        let settings = AgentModelSettings(model: "offline", temperature: 0.7, maxTokens: 100)
        let (commands, commandLatencies, commandElapsed) = try await measure(writers: 8) { _ in
            let id = UUID()
            _ = try await handler.handle(
                .create(CreateAgent(agentID: id, ownerID: "bench", name: "bench", instructions: "x", settings: settings, now: Date())),
                on: StreamID(category: AgentDecider.category, id: id), context: CommandContext(userID: "bench"))
            return 1
        }
        let commandTags: [String: JSONValue] = ["writers": .number(8), "seconds": .number(commandElapsed)]
        report.emit("command.create_agent.throughput", Double(commands) / commandElapsed, unit: "commands/s", commandTags)
        report.emit("command.create_agent.latency.p50", commandLatencies.percentileMs(0.50), unit: "ms", commandTags)
        report.emit("command.create_agent.latency.p99", commandLatencies.percentileMs(0.99), unit: "ms", commandTags)
    }

    /// Runs `operation` on `writers` concurrent tasks for `duration`; returns units done,
    /// per-operation latencies and elapsed seconds.
    private func measure(
        writers: Int, _ operation: @escaping @Sendable (Int) async throws -> Int
    ) async throws -> (Int, Latencies, Double) {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: duration)
        let start = clock.now
        let results = try await withThrowingTaskGroup(of: (Int, Latencies).self) { group in
            for writer in 0..<writers {
                group.addTask {
                    var units = 0
                    var latencies = Latencies()
                    while clock.now < deadline {
                        let begin = clock.now
                        units += try await operation(writer)
                        latencies.add(begin.duration(to: clock.now))
                    }
                    return (units, latencies)
                }
            }
            var total = 0
            var all = Latencies()
            for try await (units, latencies) in group {
                total += units
                all.samples += latencies.samples
            }
            return (total, all)
        }
        return (results.0, results.1, seconds(start.duration(to: clock.now)))
    }

    private func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
