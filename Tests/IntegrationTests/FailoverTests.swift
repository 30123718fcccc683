import Adapters
import Commands
import Events
import Foundation
import PostgresNIO
import Synchronization
import Testing

/// Whole processes, killed with SIGKILL: the projectors' guarantees must hold when a process dies
/// at any moment.
@Suite(.serialized) struct FailoverTests {
    static func serve(_ database: ChronicleDatabase, roles: String = "projectors") throws -> Process {
        try CLIProcess.start(["serve", "--roles", roles, "--database-url", CLITests.url(database)])
    }

    /// Appends agent commands (creates, changes, deletes) until stopped, and at least `minimum`
    /// of them however slow the machine is (a count, not a rate).
    final class Writer: Sendable {
        let stop = Mutex(false)
        let count = Mutex(0)
        let minimum: Int
        /// A bound by count as well as by time: on a loaded machine the kills and restarts take
        /// minutes, and an unbounded writer then left more than the checks' time to drain (16,513
        /// events once, where 461 is usual).
        let maximum: Int

        init(minimum: Int = 150, maximum: Int = 5000) {
            self.minimum = minimum
            self.maximum = maximum
        }

        func run(_ database: ChronicleDatabase) async throws {
            let handler = CommandHandler<AgentDecider>(store: database.eventStore)
            let tenant = database.settings.database
            var agents: [UUID] = []
            var n = 0
            while (!stop.withLock({ $0 }) || count.withLock({ $0 }) < minimum) && count.withLock({ $0 }) < maximum {
                n += 1
                if agents.isEmpty || n % 3 == 0 {
                    let id = UUID()
                    _ = try await handler.handle(
                        .create(CreateAgent(agentID: id, ownerID: "owner-\(n % 5)", name: "agent \(n)", instructions: "v0",
                            settings: AgentModelSettings(model: "offline", temperature: 0.5, maxTokens: 10), now: Date())),
                        on: StreamID(category: "agent", id: id), context: CommandContext(tenantID: tenant))
                    agents.append(id)
                } else if n % 11 == 0 {
                    let id = agents.removeFirst()
                    _ = try await handler.handle(.delete(DeleteAgent(agentID: id, now: Date())), on: StreamID(category: "agent", id: id), context: CommandContext(tenantID: tenant))
                } else {
                    let id = agents[n % agents.count]
                    _ = try await handler.handle(
                        .changeInstructions(ChangeAgentInstructions(agentID: id, instructions: "v\(n)", now: Date())),
                        on: StreamID(category: "agent", id: id), context: CommandContext(tenantID: tenant))
                }
                count.withLock { $0 += 1 }
                try await Task.sleep(for: .milliseconds(5))
            }
        }
    }

    /// Which process (by pid) holds a projector's lease, from the advisory lock's holder.
    /// Advisory locks are per database, hence the filter.
    static func leaseHolders(_ database: ChronicleDatabase, projector: String) async throws -> [String] {
        try await database.client.query("""
            SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND l.classid::bigint = ((hashtextextended(\("chronicle.lease." + projector), 0) >> 32) & 4294967295)
              AND l.objid::bigint = (hashtextextended(\("chronicle.lease." + projector), 0) & 4294967295)
            """, logger: TestServers.logger).decode(String.self).all()
    }

    static func newestCommitted(_ database: ChronicleDatabase) async throws -> Checkpoint {
        try await TestServers.newestCommitted(database)
    }

    static func checkpoint(_ database: ChronicleDatabase, _ projector: String) async throws -> Checkpoint {
        let rows = try await database.client.query(
            "SELECT transaction_id::text, position FROM projector_checkpoints WHERE projector = \(projector)", logger: TestServers.logger
        ).decode((String, Int64).self).all()
        return rows.first.map { Checkpoint(transactionID: UInt64($0.0)!, position: $0.1) } ?? .start
    }

    static func waitForCatchUp(_ database: ChronicleDatabase, projectors: [String], timeout: Duration = .seconds(60)) async throws {
        let target = try await newestCommitted(database)
        let deadline = ContinuousClock.now.advanced(by: timeout)
        for projector in projectors {
            while try await checkpoint(database, projector) < target {
                guard ContinuousClock.now < deadline else { Issue.record("\(projector) never caught up"); return }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// The read models equal what the log says, row by row: event counts per day and type, and
    /// one row per agent with its owner, name, status and last version.
    static func expectReadModelsEqualTheLog(_ database: ChronicleDatabase) async throws {
        let counts = try await database.client.query(
            "SELECT day::text, event_type, events FROM event_counts ORDER BY 1, 2", logger: TestServers.logger
        ).decode((String, String, Int64).self).all()
        let expectedCounts = try await database.client.query("""
            SELECT ((recorded_at AT TIME ZONE 'UTC')::date)::text, event_type, count(*) FROM events GROUP BY 1, 2 ORDER BY 1, 2
            """, logger: TestServers.logger).decode((String, String, Int64).self).all()
        #expect(counts.map { "\($0.0) \($0.1) \($0.2)" } == expectedCounts.map { "\($0.0) \($0.1) \($0.2)" }, "event_counts differs from the log")

        try await expectAgentsEqualTheLog(database)
    }

    /// agents_by_owner holds one row per agent with its owner, name, status and last version.
    static func expectAgentsEqualTheLog(_ database: ChronicleDatabase) async throws {
        let agents = try await database.client.query(
            "SELECT agent_id::text, owner_id, name, status, version FROM agents_by_owner ORDER BY 1", logger: TestServers.logger
        ).decode((String, String, String, String, Int64).self).all()
        let expectedAgents = try await database.client.query("""
            SELECT c.data->>'agent_id', c.data->>'owner_id', c.data->>'name',
                   CASE WHEN EXISTS (SELECT 1 FROM events d WHERE d.stream_id = c.stream_id AND d.event_type = 'AgentDeleted') THEN 'deleted' ELSE 'active' END,
                   (SELECT max(stream_version) FROM events v WHERE v.stream_id = c.stream_id)
            FROM events c WHERE c.event_type = 'AgentCreated' ORDER BY 1
            """, logger: TestServers.logger).decode((String, String, String, String, Int64).self).all()
        #expect(agents.count == expectedAgents.count, "agents_by_owner has \(agents.count) rows, the log \(expectedAgents.count) agents")
        #expect(agents.map { "\($0.0.lowercased()) \($0.1) \($0.2) \($0.3) \($0.4)" } == expectedAgents.map { "\($0.0.lowercased()) \($0.1) \($0.2) \($0.3) \($0.4)" })
    }

    @Test func killingTheLeaseHolderHandsOverWithin5sWithNoEventAppliedTwice() async throws {
        try await TestServers.withDatabase { database in
            let first = try Self.serve(database)
            defer { if first.isRunning { first.terminate() } }
            var holders: [String] = []
            for _ in 0..<100 where holders.isEmpty {
                holders = try await Self.leaseHolders(database, projector: "event_counts")
                try await Task.sleep(for: .milliseconds(100))
            }
            let second = try Self.serve(database)
            defer { if second.isRunning { second.terminate() } }
            try await Task.sleep(for: .seconds(2))  // the second process is up and standing by

            let writer = Writer()
            let writing = Task { try await writer.run(database) }
            let samples = Mutex<[Checkpoint]>([])
            let sampling = Task {
                while !Task.isCancelled {
                    let current = try await Self.checkpoint(database, "event_counts")
                    samples.withLock { $0.append(current) }
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            try await Task.sleep(for: .seconds(2))

            holders = try await Self.leaseHolders(database, projector: "event_counts")
            #expect(holders.count == 1, "holders: \(holders)")
            let firstHolds = holders.first == "chronicle-\(first.processIdentifier)"
            #expect(firstHolds || holders.first == "chronicle-\(second.processIdentifier)", "the lease holder \(holders) is neither child process")
            let (killed, survivor): (Process, Process) = firstHolds ? (first, second) : (second, first)
            kill(killed.processIdentifier, SIGKILL)
            let clock = ContinuousClock()
            let start = clock.now
            var takeover: Duration?
            while clock.now - start < .seconds(10) {
                if try await Self.leaseHolders(database, projector: "event_counts") == ["chronicle-\(survivor.processIdentifier)"] {
                    takeover = clock.now - start
                    break
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            let handedOver = try #require(takeover, "no takeover within 10 s")
            #expect(handedOver < .seconds(5), "takeover took \(handedOver)")

            try await Task.sleep(for: .seconds(2))  // the survivor works on
            writer.stop.withLock { $0 = true }
            try await writing.value
            try await Self.waitForCatchUp(database, projectors: ["event_counts", "agents_by_owner"])
            sampling.cancel()
            _ = await sampling.result
            let seen = samples.withLock { $0 }
            #expect(zip(seen, seen.dropFirst()).allSatisfy { $0 <= $1 }, "a checkpoint moved backwards")
            #expect(writer.count.withLock { $0 } >= writer.minimum)
            try await Self.expectReadModelsEqualTheLog(database)
            print("lease failover: takeover after \(handedOver), \(writer.count.withLock { $0 }) commands")
        }
    }

    @Test func aProjectorAndRelayProcessKilledFiveTimesStillEndsEqualToTheLog() async throws {
        try await TestServers.withDatabase { database in
            // Integration events are counted by distinct message id on a queue of the test's own.
            let inbox = RelayTests.Inbox(tenant: database.settings.database)
            let consumer = RelayTests.consume(try TestServers.amqp(), queue: "crash.\(database.settings.database)", into: inbox)
            defer { consumer.cancel() }
            try await Task.sleep(for: .milliseconds(500))
            let writer = Writer()
            let writing = Task { try await writer.run(database) }
            var process = try Self.serve(database, roles: "projectors,relay")
            var generator = SystemRandomNumberGenerator()
            for _ in 0..<5 {
                try await Task.sleep(for: .milliseconds(Int64.random(in: 300...1500, using: &generator)))
                await CLIProcess.stop(process, signal: SIGKILL)
                process = try Self.serve(database, roles: "projectors,relay")
            }
            try await Task.sleep(for: .seconds(1))
            writer.stop.withLock { $0 = true }
            try await writing.value
            defer { process.terminate() }
            try await Self.waitForCatchUp(database, projectors: ["event_counts", "agents_by_owner", "relay"])
            try await Self.expectReadModelsEqualTheLog(database)

            // Every integration event was published at least once.
            let published = try await database.client.query(
                "SELECT event_id FROM events WHERE event_type IN ('AgentCreated', 'AgentInstructionsChanged', 'AgentDeleted')",
                logger: TestServers.logger).decode(UUID.self).all().map { $0.uuidString.lowercased() }
            try await RelayTests.waitFor(inbox, count: published.count)
            let missing = Set(published).subtracting(inbox.ids.withLock { $0 })
            #expect(missing.count == 0, "integration events never published")

            // Redis, key by key: each agent's hash holds the name, status and last version.
            let redis = RedisClient(settings: try TestServers.redis(), logger: TestServers.logger)
            let agents = try await database.client.query(
                "SELECT agent_id, name, status, version FROM agents_by_owner", logger: TestServers.logger
            ).decode((UUID, String, String, Int64).self).all()
            let target = Self.format(try await Self.newestCommitted(database))
            var redisCaughtUp = false
            for _ in 0..<200 where !redisCaughtUp {
                let stored = try await redis.command("HGET", "\(database.settings.database):rm:agent_summary:_checkpoint", "cp").string ?? ""
                redisCaughtUp = stored >= target
                if !redisCaughtUp { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(redisCaughtUp, "agent_summary never caught up")
            for (id, name, status, version) in agents {
                let key = "\(database.settings.database):rm:agent_summary:agent:\(id.uuidString.lowercased())"
                let fields = try await redis.pipeline([["HGET", key, "name"], ["HGET", key, "status"], ["HGET", key, "version"]])
                #expect(fields == [.string(name), .string(status), .string(String(version))], "redis \(key) differs")
            }
            print("crash test: \(writer.count.withLock { $0 }) commands across 5 SIGKILLs, \(published.count) integration events, \(inbox.deliveries.withLock { $0 }) deliveries")
        }
    }

    static func format(_ checkpoint: Checkpoint) -> String {
        let tx = String(checkpoint.transactionID), pos = String(checkpoint.position)
        return String(repeating: "0", count: 20 - tx.count) + tx + "/" + String(repeating: "0", count: 20 - pos.count) + pos
    }
}
