import Adapters
import Commands
import Events
import Foundation
import PostgresNIO
import Projections
import Synchronization
import Testing

/// Text-to-SQL's layers two to four, with the validator bypassed: the reader role, the read-only
/// transaction that is rolled back, the cost gate and the caps, on the platform's own data.
@Suite(.serialized) struct SqlExecutorTests {
    static let alice = UserDecider.userID(email: "alice-sql@example.com").uuidString.lowercased()
    static let bob = UserDecider.userID(email: "bob-sql@example.com").uuidString.lowercased()

    /// A database with runs of alice and bob (tenant t1) projected, and an executor over it.
    static func withData(_ body: @Sendable (ChronicleDatabase, SqlExecutor) async throws -> Void) async throws {
        try await TestServers.withDatabase(listen: true) { database in
            for (owner, count) in [(alice, 3), (bob, 2)] {
                for n in 0..<count {
                    let (stream, events) = AnalyticsTests.run(owner: owner, model: "model-\(owner.prefix(4))", ending: "completed", durationMs: 100 * (n + 1), calls: 1, at: Double(n))
                    _ = try await database.eventStore.append(to: stream, expected: .noStream, events: events)
                }
            }
            let store = PostgresProjectionStore(projection: AgentRunAnalyticsProjection(), client: database.client, logger: TestServers.logger)
            // Every read model under a view, as a server's projectors keep them.
            let agents = PostgresProjectionStore(projection: AgentListProjection(), client: database.client, logger: TestServers.logger)
            let sandbox = PostgresProjectionStore(projection: SandboxRunAnalyticsProjection(), client: database.client, logger: TestServers.logger)
            let runner = Task { try await ProjectorTests.runner(store, database).run() }
            let agentsRunner = Task { try await ProjectorTests.runner(agents, database).run() }
            let sandboxRunner = Task { try await ProjectorTests.runner(sandbox, database).run() }
            defer {
                runner.cancel()
                agentsRunner.cancel()
                sandboxRunner.cancel()
            }
            // Generous: a long transaction anywhere on the server (a rebuild test's) holds every
            // reader behind the xmin horizon until it ends; CI saw one stall past 20 s.
            try await ProjectorTests.caughtUp(store, database, timeout: .seconds(180))
            try await ProjectorTests.caughtUp(agents, database, timeout: .seconds(180))
            try await ProjectorTests.caughtUp(sandbox, database, timeout: .seconds(180))
            var configured = SqlExecutor.Limits()
            configured.statementTimeout = .seconds(1)
            configured.maximumCost = 100_000
            let limits = configured
            var readerSettings = database.settings.with(username: "chronicle_sql_reader", password: nil)
            readerSettings.maxConnections = 1
            let reader = readerSettings
            try await SqlExecutor.prepare(admin: database.client, readerRole: "chronicle_sql_reader", limits: limits, logger: TestServers.logger)
            try await ChronicleDatabase.withRunning(reader, logger: TestServers.logger) { readerDatabase in
                let executor = SqlExecutor(
                    admin: database.client, reader: readerDatabase.client, readerRole: "chronicle_sql_reader", limits: limits, logger: TestServers.logger)
                try await executor.prepare()
                try await body(database, executor)
            }
        }
    }

    static func viewer(_ owner: String, admin: Bool = false) -> SqlExecutor.Viewer { .init(ownerID: owner, tenantID: "t1", isAdmin: admin) }

    @Test func eachOwnerSeesOnlyTheirRowsAndAnAdminTheTenants() async throws {
        try await Self.withData { _, executor in
            let mine = try await executor.run("SELECT owner_id, count(*) FROM agent_runs GROUP BY 1", as: Self.viewer(Self.alice))
            #expect(mine.columns == ["owner_id", "count"])
            #expect(mine.rows == [[.string(Self.alice), .number(3)]])
            // Whatever SQL the model writes, bob gets none of alice's rows.
            let theirs = try await executor.run("SELECT * FROM agent_runs WHERE owner_id = '\(Self.alice)'", as: Self.viewer(Self.bob))
            #expect(theirs.rows.isEmpty && theirs.rowCount == 0)
            let tenant = try await executor.run("SELECT owner_id, count(*) FROM chronicle_data.agent_runs GROUP BY 1 ORDER BY 2 DESC", as: Self.viewer(Self.bob, admin: true))
            #expect(tenant.rows == [[.string(Self.alice), .number(3)], [.string(Self.bob), .number(2)]])
            // The read model itself is not the reader's to read.
            await #expect(throws: SqlExecutor.Refusal.self) {
                _ = try await executor.run("SELECT * FROM public.agent_run_analytics", as: Self.viewer(Self.bob))
            }
        }
    }

    /// A rebuild replaces the read model's view, and the chronicle_data view over it goes with
    /// it; the next query makes it again.
    @Test func aRebuildOfTheReadModelUnderAViewKeepsQueriesWorking() async throws {
        try await Self.withData { database, executor in
            #expect(try await executor.run("SELECT count(*) FROM agent_runs", as: Self.viewer(Self.alice)).rows == [[.number(3)]])
            let store = PostgresProjectionStore(projection: AgentRunAnalyticsProjection(), client: database.client, logger: TestServers.logger)
            let rebuilt = try await store.rebuild(events: database.eventStore, batchSize: 100) { _ in }
            #expect(rebuilt.generation == 2)
            #expect(try await executor.run("SELECT count(*) FROM agent_runs", as: Self.viewer(Self.alice)).rows == [[.number(3)]])
        }
    }

    @Test func everyAttackIsStoppedBelowTheValidatorWithNothingLeftBehind() async throws {
        try await Self.withData { database, executor in
            let before = try await database.client.query("SELECT count(*) FROM events", logger: TestServers.logger).decode(Int64.self).all()
            var stopped = 0
            for attack in SqlCorpus.attacks where attack.rule != "sql.nul" {
                do {
                    let result = try await executor.run(attack.sql, as: Self.viewer(Self.bob))
                    // It ran: it must have shown nothing of alice's and changed nothing.
                    let text = result.rows.flatMap { $0 }.map { "\($0)" }.joined()
                    #expect(!text.contains(Self.alice), "\(attack.name) leaked another owner's rows")
                } catch let refusal as SqlExecutor.Refusal {
                    #expect(!refusal.reason.isEmpty)
                    stopped += 1
                }
            }
            #expect(stopped >= SqlCorpus.attacks.count / 2, "only \(stopped) attacks were stopped below the validator")
            let after = try await database.client.query("SELECT count(*) FROM events", logger: TestServers.logger).decode(Int64.self).all()
            #expect(before == after, "an attack changed the log")
            let created = try await database.client.query("SELECT to_regclass('stolen') IS NULL", logger: TestServers.logger).decode(Bool.self).all()
            #expect(created == [true])
            // The reader's sessions only: projectors hold advisory locks (their leases) all along.
            let locks = try await database.client.query("""
                SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                WHERE l.locktype = 'advisory' AND a.usename = 'chronicle_sql_reader' AND a.datname = current_database()
                """, logger: TestServers.logger).decode(Int64.self).all()
            #expect(locks == [0], "an advisory lock survived its query")
            let bound = try await database.client.query("SELECT count(*) FROM sql_sessions", logger: TestServers.logger).decode(Int64.self).all()
            #expect(bound == [0], "a reader session stayed bound")
        }
    }

    @Test func nothingAQueryDoesSurvivesIntoTheNextOnTheSameConnection() async throws {
        try await Self.withData { _, executor in
            _ = try? await executor.run(
                "SELECT set_config('statement_timeout', '0', false), pg_advisory_lock(42), set_config('search_path', 'public', false)",
                as: Self.viewer(Self.bob))
            let next = try await executor.run(
                "SELECT current_setting('statement_timeout'), (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())",
                as: Self.viewer(Self.bob))
            #expect(next.rows == [[.string("1s"), .number(0)]], "\(next.rows)")
            // The reader may not sleep at all.
            await #expect(throws: SqlExecutor.Refusal.self) { _ = try await executor.run("SELECT pg_sleep(10)", as: Self.viewer(Self.bob)) }
            // A recursion without end looks cheap to the planner: the transaction's own timeout stops it.
            await #expect(throws: SqlExecutor.Refusal(layer: "transaction", reason: "the query ran past its time limit and was cancelled")) {
                _ = try await executor.run(
                    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r", as: Self.viewer(Self.bob))
            }
        }
    }

    /// The legitimate corpus runs through every layer below the validator, not only past it.
    @Test func theLegitimateCorpusRunsThroughTheRoleTransactionAndCostLayers() async throws {
        try await Self.withData { _, executor in
            for sql in SqlCorpus.legitimate {
                do {
                    _ = try await executor.run(sql, as: Self.viewer(Self.alice))
                } catch {
                    Issue.record("refused below the validator: \(sql)\n\(error)")
                }
            }
        }
    }

    /// The functions an attacker wants are revoked from the reader (this server's login owns them).
    @Test func theReaderMayNotCallTheRevokedFunctions() async throws {
        try await Self.withData { _, executor in
            for sql in ["SELECT pg_sleep(0)", "SELECT set_config('work_mem', '1GB', true)", "SELECT pg_advisory_lock(1)", "SELECT lo_create(0)",
                        "SELECT query_to_xml('SELECT 1', true, true, '')", "SELECT pg_terminate_backend(1)"] {
                await #expect(throws: SqlExecutor.Refusal.self, "\(sql)") { _ = try await executor.run(sql, as: Self.viewer(Self.bob)) }
                do { _ = try await executor.run(sql, as: Self.viewer(Self.bob)) } catch let refusal as SqlExecutor.Refusal {
                    #expect(refusal.layer == "role", "\(sql): \(refusal)")
                }
            }
        }
    }

    @Test func theCostGateAndTheCapsBoundWhatRuns() async throws {
        try await Self.withData { _, executor in
            await #expect(throws: SqlExecutor.Refusal.self) {
                _ = try await executor.run("SELECT count(*) FROM generate_series(1, 1000000000) a, generate_series(1, 1000) b", as: Self.viewer(Self.bob))
            }
            let capped = try await executor.run("SELECT n FROM generate_series(1, 5000) AS n", as: Self.viewer(Self.bob))
            #expect(capped.rows.count == 1000 && capped.rowCount == 5000 && capped.truncated)
            let writes = [
                "WITH gone AS (DELETE FROM sql_sessions RETURNING *) SELECT * FROM gone",
                "SELECT nextval('events_global_position_seq')",
                "SELECT 1; DELETE FROM events",
                "COMMIT",
            ]
            for sql in writes {
                await #expect(throws: SqlExecutor.Refusal.self, "\(sql)") { _ = try await executor.run(sql, as: Self.viewer(Self.bob)) }
            }
        }
    }

    /// NOTIFY is allowed in a read-only transaction, but a notification is only sent at commit:
    /// the transaction that is always rolled back sends none (and the role may not call it).
    @Test func aNotificationFromAQueryIsNeverDelivered() async throws {
        try await Self.withData { database, executor in
            let heard = Mutex(0)
            let listening = Task {
                try await database.client.withConnection { connection in
                    try await connection.listen(on: "sql_probe") { notifications in
                        for try await _ in notifications { heard.withLock { $0 += 1 } }
                    }
                }
            }
            defer { listening.cancel() }
            try await Task.sleep(for: .milliseconds(300))
            // The role may not notify where the functions were revoked; where it may, nothing is sent.
            _ = try? await executor.run("SELECT pg_notify('sql_probe', 'x')", as: Self.viewer(Self.bob))
            try await database.execute("NOTIFY sql_probe, 'control'")
            let deadline = ContinuousClock.now.advanced(by: .seconds(5))
            while heard.withLock({ $0 }) == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
            try await Task.sleep(for: .milliseconds(300))
            #expect(heard.withLock { $0 } == 1, "only the control notification may arrive")
        }
    }
}
