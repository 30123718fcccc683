import CLISupport
import Adapters
import Commands
import Events
import Foundation

/// Append throughput and latency of the Postgres event store, beside the raw INSERT ceiling of the
/// same server measured in the same run.
struct EventStoreBenchmark {
    let database: ChronicleDatabase
    let duration: Duration
    let report: BenchReport

    func run() async throws {
        let payload = Data(#"{"agent_id":"00000000-0000-0000-0000-000000000000","instructions":"benchmark payload of roughly three hundred bytes: the size of a typical small domain event with a few fields and some text in it, padded out with words so that it is realistic rather than tiny, as event payloads usually are."}"#.utf8)
        let metadata = EventMetadata(correlationID: "bench", causationID: "bench", commandID: "bench", userID: "bench", tenantID: "bench")

        try await appendScenarios([(1, 1), (8, 1), (1, 100), (8, 100)], payload: payload, metadata: metadata, notify: true)
        // The NOTIFY trigger takes a server-wide lock at commit, so notifying transactions commit
        // one at a time. Measured, not guessed: the same appends with the trigger disabled.
        try await database.execute("ALTER TABLE events DISABLE TRIGGER events_notify")
        try await appendScenarios([(8, 1)], payload: payload, metadata: metadata, notify: false)
        try await database.execute("ALTER TABLE events ENABLE TRIGGER events_notify")
        try await chainCost(payload: payload, metadata: metadata)
        try await commandAndCeilingScenarios(payload: payload)
    }

    /// What the hash chain costs: the same appends with and without it, alternated twice so that
    /// neither always runs on the warmer server. Unchained appends store an empty hash, on the
    /// benchmark's own database only.
    private func chainCost(payload: Data, metadata: EventMetadata) async throws {
        for (writers, batch) in [(8, 1), (8, 100)] {
            var rates: [Bool: [Double]] = [:]
            for chained in [false, true, false, true] {
                let rate = try await appendScenarios(
                    [(writers, batch)], payload: payload, metadata: metadata, notify: true, chained: chained, quiet: true)[0]
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
    private func appendScenarios(
        _ shapes: [(Int, Int)], payload: Data, metadata: EventMetadata, notify: Bool, chained: Bool = true, quiet: Bool = false
    ) async throws -> [Double] {
        let store = PostgresEventStore(client: database.client, logger: database.eventStore.logger, signal: database.eventStore.signal, chained: chained)
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
                "seconds": .number(elapsed), "appends": .number(Double(latencies.samples.count)), "notify": .bool(notify),
            ]
            report.emit("eventstore.append.throughput", Double(events) / elapsed, unit: "events/s", tags)
            report.emit("eventstore.append.latency.p50", latencies.percentileMs(0.50), unit: "ms", tags)
            report.emit("eventstore.append.latency.p99", latencies.percentileMs(0.99), unit: "ms", tags)
        }
        return rates
    }

    private func commandAndCeilingScenarios(payload: Data) async throws {
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

        // Beside: the same server taking plain single-row INSERTs into a bare table.
        try await database.execute("CREATE TABLE IF NOT EXISTS bench_raw (id bigserial PRIMARY KEY, data jsonb)")
        for writers in [1, 8] {
            let (rows, _, elapsed) = try await measure(writers: writers) { _ in
                try await database.rawInsert(table: "bench_raw", json: payload)
                return 1
            }
            report.emit("postgres.raw_insert.throughput", Double(rows) / elapsed, unit: "rows/s", ["writers": .number(Double(writers))])
        }

        // Reading the global log in the subscribers' safe order.
        let clock = ContinuousClock()
        let start = clock.now
        var checkpoint = Checkpoint.start
        var read = 0
        while true {
            let batch = try await database.eventStore.readAll(after: checkpoint, limit: 1000)
            guard let last = batch.last else { break }
            read += batch.count
            checkpoint = last.checkpoint
        }
        let readSeconds = seconds(start.duration(to: clock.now))
        report.emit("eventstore.read_all.throughput", Double(read) / readSeconds, unit: "events/s", ["events": .number(Double(read))])
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
