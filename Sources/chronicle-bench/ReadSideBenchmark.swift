import CLISupport
import Adapters
import Commands
import Composition
import Events
import Foundation
import Logging
import Metrics
import Projections
import Workers
import Synchronization

/// The read side's figures, each beside the raw keyset read rate of the same events table
/// (pgbench, one client, pages of 1,000 rows of the columns the store reads), in the same run:
/// reading the log, catching a new projector up, and rebuilding a read model, from `rebuildEvents`
/// agent creations and renames. Then commit-to-read-model latency at a steady rate for Postgres
/// and Redis, and relay throughput with confirms.
struct ReadSideBenchmark {
    let database: ChronicleDatabase
    let settings: PostgresSettings
    let platform: Platform
    let report: BenchReport
    let rebuildEvents: Int
    let latencySeconds: Int
    let relayEvents: Int

    func run() async throws {
        try await seed(rebuildEvents)
        let keyset = try await keysetRate()
        try await readAllRate(beside: keyset)
        try await catchUpRate(beside: keyset)
        try await rebuildRate(beside: keyset)
        try await latency(rate: 1000)
        try await relayThroughput()
    }

    /// Appends `count` agent events, half creations and half renames, in appends of 500 from 8
    /// writers (each append's stream holds the 250 agents it creates: the projection keys rows by
    /// the agent id in the event).
    private func seed(_ count: Int) async throws {
        let perWriter = count / 8
        let settings = AgentModelSettings(model: "offline", temperature: 0.5, maxTokens: 100)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    var written = 0
                    while written < perWriter {
                        let size = min(500, perWriter - written)
                        var events: [NewEvent] = []
                        let agents = (0..<(size + 1) / 2).map { _ in UUID() }
                        for (index, agent) in agents.enumerated() {
                            events.append(try NewEvent(AgentCreated(
                                agentID: agent, ownerID: "owner-\(index % 100)", name: "agent \(index)", instructions: "read-side benchmark agent",
                                settings: settings, plugins: [], createdAt: Date()), id: UUID(), metadata: EventMetadata(userID: "bench")))
                        }
                        for agent in agents.prefix(size - agents.count) {
                            events.append(try NewEvent(AgentRenamed(agentID: agent, name: "renamed", renamedAt: Date()), id: UUID(), metadata: EventMetadata(userID: "bench")))
                        }
                        _ = try await database.eventStore.append(to: "agent-\(UUID())", expected: .noStream, events: events)
                        written += size
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// pgbench, one client: pages of 1,000 rows from a random position, in key order.
    private func keysetRate() async throws -> Double {
        let events = try await database.countEvents()
        let script = """
            \\set p random(0, \(max(1, events - 1_000)))
            SELECT global_position, stream_id, stream_version, event_id, event_type, schema_version, data, metadata, recorded_at, transaction_id
            FROM events WHERE global_position > :p ORDER BY global_position LIMIT 1000;

            """
        let rate = try Pgbench(settings: settings).tps(script: script, clients: 1, seconds: 5) * 1_000
        report.emit("postgres.keyset_read.throughput", rate, unit: "rows/s", [
            "events": .number(Double(events)), "page": .number(1_000), "peer": .string("pgbench, 1 client"),
        ])
        return rate
    }

    private func readAllRate(beside keyset: Double) async throws {
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
        let rate = Double(read) / seconds(start.duration(to: clock.now))
        report.emit("eventstore.read_all.throughput", rate, unit: "events/s", ["events": .number(Double(read)), "page": .number(1_000)])
        report.emit("eventstore.read_all.vs_keyset", rate / keyset, unit: "ratio", [:])
    }

    /// A new projector (agents_by_owner, as the server runs it) started at the beginning of the
    /// log: from its start to its checkpoint passing the head.
    private func catchUpRate(beside keyset: Double) async throws {
        let store = platform.postgres(AgentListProjection())
        let head = try await database.eventStore.head()
        let clock = ContinuousClock()
        let start = clock.now
        let runner = Task { try await platform.runner(store).run() }
        defer { runner.cancel() }
        while try await store.checkpoint() < head { try await Task.sleep(for: .milliseconds(20)) }
        let elapsed = seconds(start.duration(to: clock.now))
        let events = try await database.countEvents()
        report.emit("projection.catch_up.throughput", Double(events) / elapsed, unit: "events/s", [
            "projection": .string("agents_by_owner"), "events": .number(Double(events)), "seconds": .number(elapsed),
        ])
        report.emit("projection.catch_up.vs_keyset", Double(events) / elapsed / keyset, unit: "ratio", [:])
        runner.cancel()
        _ = await runner.result
    }

    private func rebuildRate(beside keyset: Double) async throws {
        let clock = ContinuousClock()
        let start = clock.now
        let result = try await platform.postgres(AgentListProjection()).rebuild(events: database.eventStore)
        let rebuildSeconds = seconds(start.duration(to: clock.now))
        let rate = Double(result.events) / rebuildSeconds
        report.emit("projection.rebuild.throughput", rate, unit: "events/s", [
            "projection": .string("agents_by_owner"), "events": .number(Double(result.events)), "seconds": .number(rebuildSeconds),
        ])
        report.emit("projection.rebuild.vs_keyset", rate / keyset, unit: "ratio", [:])
    }

    /// Appends one event every millisecond for `latencySeconds`, while the Postgres and Redis
    /// projectors run, and measures from each append's return to its read model passing it.
    private func latency(rate: Int) async throws {
        let postgres = platform.postgres(EventCountsProjection())
        let redis = platform.redis(BenchRedisProjection())
        let runners = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await platform.runner(postgres).run() }
                group.addTask { try await platform.runner(redis).run() }
                try await group.waitForAll()
            }
        }
        defer { runners.cancel() }
        // Let both catch up with the seed first.
        let head = try await database.eventStore.head()
        while try await behind(postgres, redis, head) { try await Task.sleep(for: .milliseconds(200)) }
        let clock = ContinuousClock()
        let appended = Mutex<[(Checkpoint, ContinuousClock.Instant)]>([])
        let seenPostgres = Mutex<[(Checkpoint, ContinuousClock.Instant)]>([])
        let seenRedis = Mutex<[(Checkpoint, ContinuousClock.Instant)]>([])
        let sampling = Task {
            while !Task.isCancelled {
                let p = try await postgres.checkpoint(), r = try await redis.checkpoint(), now = clock.now
                seenPostgres.withLock { $0.append((p, now)) }
                seenRedis.withLock { $0.append((r, now)) }
                try await Task.sleep(for: .milliseconds(1))
            }
        }
        let interval = Duration.seconds(1) / rate
        var next = clock.now
        let deadline = clock.now.advanced(by: .seconds(latencySeconds))
        while clock.now < deadline {
            let result = try await database.eventStore.append(to: "latency-\(UUID())", expected: .noStream, events: [
                NewEvent(eventID: UUID(), eventType: "LatencyProbe", schemaVersion: 1, data: Data("{}".utf8), metadata: EventMetadata())
            ])
            appended.withLock { $0.append((result.checkpoint, clock.now)) }
            next = next.advanced(by: interval)
            if next > clock.now { try await Task.sleep(until: next, clock: clock) }
        }
        let last = appended.withLock { $0.last!.0 }
        while try await behind(postgres, redis, last) { try await Task.sleep(for: .milliseconds(5)) }
        try await Task.sleep(for: .milliseconds(20))
        sampling.cancel()
        _ = await sampling.result
        let probes = appended.withLock { $0 }
        for (store, samples) in [("postgres", seenPostgres.withLock { $0 }), ("redis", seenRedis.withLock { $0 })] {
            var latencies = Latencies()
            var index = 0
            for (checkpoint, at) in probes {
                while index < samples.count && (samples[index].0 < checkpoint || samples[index].1 < at) { index += 1 }
                guard index < samples.count else { break }
                latencies.add(at.duration(to: samples[index].1))
            }
            let tags: [String: JSONValue] = ["store": .string(store), "rate_per_s": .number(Double(rate)), "events": .number(Double(probes.count))]
            report.emit("projection.commit_to_read_model.latency.p50", latencies.percentileMs(0.50), unit: "ms", tags)
            report.emit("projection.commit_to_read_model.latency.p99", latencies.percentileMs(0.99), unit: "ms", tags)
        }
    }

    private func behind<A: ProjectionStore, B: ProjectionStore>(_ a: A, _ b: B, _ target: Checkpoint) async throws -> Bool {
        let first = try await a.checkpoint()
        let second = try await b.checkpoint()
        return first < target || second < target
    }

    /// Times the relay publishing `relayEvents` integration events with confirms. The relay
    /// first catches up, untimed, with what the other benchmarks wrote (a million events without
    /// a contract: scanning them is not publishing); then the events are appended while it runs,
    /// and the clock stops when its checkpoint passes the last of them.
    private func relayThroughput() async throws {
        let created = AgentCreated(
            agentID: UUID(), ownerID: "bench", name: "bench", instructions: "relay benchmark",
            settings: AgentModelSettings(model: "offline", temperature: 0.5, maxTokens: 10), plugins: [], createdAt: Date())
        let relay = ChronicleApp.relay(platform)
        let task = Task { try await relay.run() }
        defer { task.cancel() }
        let before = try await database.eventStore.head()
        while try await relay.store.checkpoint() < before { try await Task.sleep(for: .milliseconds(50)) }
        let clock = ContinuousClock()
        let start = clock.now
        var written = 0
        while written < relayEvents {
            let events = try (0..<min(500, relayEvents - written)).map { _ in try NewEvent(created, id: UUID(), metadata: EventMetadata()) }
            _ = try await database.eventStore.append(to: "agent-\(UUID())", expected: .any, events: events)
            written += events.count
        }
        let head = try await database.eventStore.head()
        while try await relay.store.checkpoint() < head { try await Task.sleep(for: .milliseconds(20)) }
        let elapsed = seconds(start.duration(to: clock.now))
        report.emit("relay.publish.throughput", Double(relayEvents) / elapsed, unit: "messages/s", [
            "messages": .number(Double(relayEvents)), "confirms": .string("per batch of up to 500"),
            "timed": .string("from the first append to the relay's checkpoint passing the last"),
        ])
    }

    private func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}

/// A Redis read model for the latency benchmark: the last position seen per event type.
struct BenchRedisProjection: RedisProjection {
    let name = "bench_last_seen"
    func writes(for event: RecordedEvent) throws -> [RedisWrite] {
        [.hashSet(key: "last:\(event.eventType)", fields: ["position": String(event.position)])]
    }
}
