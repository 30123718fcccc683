import Adapters
import Commands
import Events
import Foundation
import Projections
import Workers
import Synchronization
import Testing

@Suite(.serialized) struct RebuildTests {
    @Test func readsDuringARebuildUnderLoadNeverSeeAnEmptyOrPartialModel() async throws {
        try await TestServers.withDatabase(listen: true) { database in
            let seed = FailoverTests.Writer(minimum: 300)
            seed.stop.withLock { $0 = true }
            try await seed.run(database)
            let store = PostgresProjectionStore(projection: AgentListProjection(), client: database.client, logger: TestServers.logger)
            let runner = Task { try await ProjectorTests.runner(store, database).run() }
            defer { runner.cancel() }
            try await FailoverTests.waitForCatchUp(database, projectors: ["agents_by_owner"])
            let before = try await database.client.query("SELECT count(*) FROM agents_by_owner", logger: TestServers.logger).decode(Int64.self).all()[0]

            // Load: a writer keeps appending; a reader keeps counting rows through the view.
            let writer = FailoverTests.Writer(minimum: 100)
            let writing = Task { try await writer.run(database) }
            let counts = Mutex<[Int64]>([])
            let reading = Task {
                while !Task.isCancelled {
                    let count = try await database.client.query("SELECT count(*) FROM agents_by_owner", logger: TestServers.logger).decode(Int64.self).all()[0]
                    counts.withLock { $0.append(count) }
                }
            }
            let reports = Mutex(0)
            let result = try await store.rebuild(events: database.eventStore, batchSize: 100) { _ in reports.withLock { $0 += 1 } }
            writer.stop.withLock { $0 = true }
            try await writing.value
            try await FailoverTests.waitForCatchUp(database, projectors: ["agents_by_owner"])
            reading.cancel()
            _ = await reading.result

            let seen = counts.withLock { $0 }
            #expect(result.generation == 2)
            #expect(seen.count > 10, "the reader barely ran")
            #expect(seen.allSatisfy { $0 >= before }, "a read saw fewer agents than before the rebuild: min \(seen.min() ?? -1) < \(before)")
            #expect(zip(seen, seen.dropFirst()).allSatisfy { $0 <= $1 }, "the agent count went down during the rebuild")
            #expect(reports.withLock { $0 } > 1, "no progress was reported")
            try await FailoverTests.expectAgentsEqualTheLog(database)
            let oldTable = try await database.client.query("SELECT to_regclass('agents_by_owner_g1') IS NULL", logger: TestServers.logger).decode(Bool.self).all()
            #expect(oldTable == [true], "the old generation was not dropped")
        }
    }

    @Test func theCLIRebuildsWithAProgressBar() async throws {
        try await TestServers.withDatabase { database in
            let seed = FailoverTests.Writer(minimum: 50)
            seed.stop.withLock { $0 = true }
            try await seed.run(database)
            let result = try await CLIProcess.run(["projections", "rebuild", "event_counts", "--database-url", CLITests.url(database)])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("event_counts generation 2 swapped in"), "\(result.stdout)")
            #expect(result.stderr.contains("events/s") && result.stderr.contains("ETA"), "\(result.stderr)")
            let unknown = try await CLIProcess.run(["projections", "rebuild", "nope", "--database-url", CLITests.url(database)])
            #expect(unknown.status == 1 && unknown.stderrLines.count == 1)
        }
    }
}
