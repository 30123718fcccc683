import Adapters
import Commands
import Crypto
import Events
import Foundation
import Logging
import PostgresNIO
import Testing

/// The tamper-evident log (migration 0006): each test tampers with a copy of one filled test
/// database (CREATE DATABASE … TEMPLATE) and runs the verifier on the copy.
@Suite(.serialized) struct AuditChainTests {
    static let key = try! CheckpointKey(signingKeyBase64: Data((0..<32).map { UInt8($0) }).base64EncodedString())

    static func event(_ n: Int, _ text: String = "alpha") -> NewEvent {
        NewEvent(
            eventID: UUID(), eventType: "TamperProbe", schemaVersion: 1,
            data: try! JSONSerialization.data(withJSONObject: ["n": n, "text": text] as [String: Any]),
            metadata: EventMetadata(correlationID: "tamper-\(n)"))
    }

    /// A source database with four streams (single and multi-event appends) and a checkpoint,
    /// then `body` with a fresh copy of it per call. On a Postgres of its own: a checkpoint
    /// covers only what no open transaction in any database of the server can still overtake,
    /// and on the shared server the other tests' transactions made that wait (and the copies,
    /// which need the source to have no connections) last minutes under CI's load.
    static func withTamperableLog(_ body: @Sendable (_ copy: @Sendable () async throws -> PostgresSettings) async throws -> Void) async throws {
        try await PrivateServer.with("postgres") { server in
            let base = try PostgresSettings(url: server.postgresURL)
            let source = "chronicle_audit"
            do {
                try await ChronicleDatabase.withRunning(base, logger: TestServers.logger) { admin in try await admin.createDatabase(source) }
                try await ChronicleDatabase.withRunning(base.with(database: source), logger: TestServers.logger) { database in
                    _ = try await database.migrate(try TestServers.migrator())
                    let store = database.eventStore
                    for stream in ["probe-a", "probe-b", "probe-c"] {
                        _ = try await store.append(to: stream, expected: .noStream, events: [event(1), event(2)])
                        _ = try await store.append(to: stream, expected: .exact(2), events: [event(3)])
                        _ = try await store.append(to: stream, expected: .exact(3), events: [event(4)])
                    }
                    _ = try await store.append(to: "probe-d", expected: .noStream, events: [event(1, "a \"quoted\" ünïcode \\u0000 text")])
                    // Nothing else runs on this server, so nothing can hold these back for long.
                    try await Watchdog.step("waiting until no transaction can overtake the 13 events") {
                        while try await store.heldBack(after: .start) { try await Task.sleep(for: .milliseconds(20)) }
                    }
                    let checkpoint = try await PostgresAuditLog(client: database.client, logger: TestServers.logger).takeCheckpoint(key: key)
                    #expect(checkpoint?.eventCount == 13, "the checkpoint counted \(checkpoint?.eventCount ?? 0) events up to \(String(describing: checkpoint?.end))")
                }
                let made = Copies()
                try await body {
                    let name = "\(source)_\(made.next())"
                    try await copy(source, to: name, base: base)
                    return base.with(database: name)
                }
            } catch {
                // PSQLError's own description says nothing (it hides the server's message).
                Issue.record("the tamperable log failed: \(String(reflecting: error))")
                throw error
            }
        }
    }

    final class Copies: @unchecked Sendable {
        private let lock = NSLock()
        private var count = 0
        func next() -> Int { lock.withLock { count += 1; return count } }
    }

    /// CREATE DATABASE … TEMPLATE needs the source to have no sessions. The source's pool has
    /// closed, but under `make test`'s load one of its sessions was once still open after 5 s
    /// (SQLSTATE 55006). On this private server every session on the source is one of this
    /// suite's own that has not yet gone: end it, and try again.
    static func copy(_ source: String, to name: String, base: PostgresSettings) async throws {
        try await ChronicleDatabase.withRunning(base, logger: TestServers.logger) { admin in
            for attempt in 1...50 {
                do {
                    try await admin.execute("CREATE DATABASE \(name) TEMPLATE \(source)")
                    return
                } catch let error as PSQLError where attempt < 50 && error.serverInfo?[.sqlState] == "55006" {
                    try await admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '\(source)' AND pid <> pg_backend_pid()")
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
        }
    }

    /// Tampers with the copy as its owner would, around the append-only trigger, then verifies.
    static func tamper(_ copy: PostgresSettings, _ sql: String, key: CheckpointKey? = key) async throws -> AuditVerification {
        try await ChronicleDatabase.withRunning(copy, logger: TestServers.logger) { database in
            if !sql.isEmpty {
                try await database.execute("""
                    ALTER TABLE events DISABLE TRIGGER events_append_only;
                    \(sql);
                    ALTER TABLE events ENABLE TRIGGER events_append_only
                    """)
            }
            return try await PostgresAuditLog(client: database.client, logger: TestServers.logger).verify(key: key)
        }
    }

    @Test func anUntouchedLogVerifiesCleanAndAFlippedByteIsNamed() async throws {
        try await Self.withTamperableLog { copy in
            let clean = try await Self.tamper(try await copy(), "")
            #expect(clean.clean, "\(clean.findings)")
            #expect(clean.streams == 4 && clean.events == 13 && clean.checkpoints == 1 && clean.signaturesChecked)
            #expect(clean.eventsAfterLastCheckpoint == 0)

            // One byte of one event's payload: "alpha" becomes "alphb" in probe-b version 3.
            let flipped = try await Self.tamper(
                try await copy(),
                "UPDATE events SET data = replace(data::text, 'alpha', 'alphb')::jsonb WHERE stream_id = 'probe-b' AND stream_version = 3")
            #expect(flipped.findings == [
                AuditFinding(
                    kind: .altered, streamID: "probe-b", version: 3,
                    detail: "its stored fields (type, payload, metadata, time or place in the stream) do not match its hash")
            ])

            // Metadata (who did it) is covered as much as the payload.
            let who = try await Self.tamper(
                try await copy(),
                "UPDATE events SET metadata = jsonb_set(metadata, '{correlation_id}', '\"forged\"') WHERE stream_id = 'probe-d'")
            #expect(who.findings.map(\.kind) == [.altered] && who.findings.first?.streamID == "probe-d")
        }
    }

    @Test func aDeletedEventInTheMiddleIsNamedAndAWholeDeletedStreamIsFoundByTheCheckpoints() async throws {
        try await Self.withTamperableLog { copy in
            let middle = try await Self.tamper(try await copy(), "DELETE FROM events WHERE stream_id = 'probe-a' AND stream_version = 2")
            #expect(middle.findings.first == AuditFinding(
                kind: .missing, streamID: "probe-a", version: 2,
                detail: "version 2 is missing (the stream goes from 1 to 3)"))
            #expect(middle.findings.last?.kind == .checkpoint)

            // Every chain left is whole: only the signed checkpoint knows the stream existed.
            let stream = try await Self.tamper(try await copy(), "DELETE FROM events WHERE stream_id = 'probe-c'")
            #expect(stream.streams == 3)
            #expect(stream.findings.count == 1)
            #expect(stream.findings.first?.kind == .checkpoint)
            #expect(stream.findings.first?.detail.contains("4 of its 13 events are gone") == true, "\(stream.findings)")

            // A stream's last event: no gap in its chain, the checkpoint again.
            let tail = try await Self.tamper(try await copy(), "DELETE FROM events WHERE stream_id = 'probe-b' AND stream_version = 4")
            #expect(tail.findings.map(\.kind) == [.checkpoint])
        }
    }

    @Test func aReChainedStreamOrAForeignKeyIsCaughtByTheCheckpoints() async throws {
        try await Self.withTamperableLog { copy in
            // An attacker who alters an event and recomputes its stream's chain with the
            // database's own function: every chain holds, the checkpoint's digest does not.
            let rechained = try await Self.tamper(
                try await copy(),
                """
                UPDATE events SET data = '{"n":1,"text":"forged"}'::jsonb WHERE stream_id = 'probe-d';
                UPDATE events SET hash = chronicle_event_hash('\\x'::bytea, stream_id, stream_version, event_id, event_type,
                    schema_version, recorded_at, data, metadata) WHERE stream_id = 'probe-d'
                """)
            #expect(rechained.findings.count == 1)
            #expect(rechained.findings.first?.detail.contains("changed or re-chained") == true, "\(rechained.findings)")

            // Checked with another key, the signature does not verify.
            let other = try CheckpointKey(signingKeyBase64: Data(repeating: 7, count: 32).base64EncodedString())
            let foreign = try await Self.tamper(try await copy(), "", key: other)
            #expect(foreign.findings.first?.detail.contains("signature does not verify") == true, "\(foreign.findings)")
        }
    }

    @Test func theCommandLinePrintsTheFindingAsJSONAndFailsWithExit1() async throws {
        try await Self.withTamperableLog { copy in
            let clean = try await copy()
            let environment = CLIProcess.environment(["CHRONICLE_AUDIT_SIGNING_KEY": Self.key.signingKeyForTests])
            let ok = try await CLIProcess.run(
                ["audit", "verify", "--database-url", Self.url(clean)], environment: environment)
            #expect(ok.status == 0, "\(ok.stdout) \(ok.stderr)")
            let report = try JSONSerialization.jsonObject(with: Data(ok.stdout.utf8)) as? [String: Any]
            #expect(report?["clean"] as? Bool == true && report?["checkpoints"] as? Int == 1 && report?["signatures_checked"] as? Bool == true)

            let tampered = try await copy()
            _ = try await Self.tamper(tampered, "DELETE FROM events WHERE stream_id = 'probe-a' AND stream_version = 3")
            let bad = try await CLIProcess.run(
                ["audit", "verify", "--stream", "probe-a", "--database-url", Self.url(tampered)], environment: environment)
            #expect(bad.status == 1, "\(bad.stdout) \(bad.stderr)")
            let findings = (try JSONSerialization.jsonObject(with: Data(bad.stdout.utf8)) as? [String: Any])?["findings"] as? [[String: Any]]
            #expect(findings?.first?["stream_id"] as? String == "probe-a" && findings?.first?["stream_version"] as? Int == 3)
            #expect(bad.stderr.contains("missing: probe-a v3"), "\(bad.stderr)")
        }
    }

    /// The projectors role signs checkpoints on its own, every CHRONICLE_AUDIT_CHECKPOINT_SECONDS.
    @Test func aServerSignsCheckpointsPeriodicallyWithTheConfiguredKey() async throws {
        try await TestServers.withDatabase { database in
            for n in 1...5 { _ = try await database.eventStore.append(to: "probe-\(n)", expected: .noStream, events: [Self.event(n)]) }
            let process = try CLIProcess.start(
                ["serve", "--roles", "projectors", "--database-url", CLITests.url(database)],
                environment: CLIProcess.environment([
                    "CHRONICLE_AUDIT_SIGNING_KEY": Self.key.signingKeyForTests, "CHRONICLE_AUDIT_CHECKPOINT_SECONDS": "1",
                ]))
            try await CLIProcess.stopping(process) {
                let log = PostgresAuditLog(client: database.client, logger: TestServers.logger)
                let deadline = ContinuousClock.now.advanced(by: .seconds(30))
                while try await log.checkpoints(after: nil).reduce(0, { $0 + $1.eventCount }) < 5, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(200))
                }
                let taken = try await log.checkpoints(after: nil)
                #expect(taken.reduce(0) { $0 + $1.eventCount } >= 5, "no checkpoint covered the events: \(taken)")
                #expect(taken.allSatisfy { $0.keyID == Self.key.id })
                let result = try await log.verify(key: Self.key)
                #expect(result.clean && result.signaturesChecked, "\(result.findings)")
            }
        }
    }

    static func url(_ s: PostgresSettings) -> String {
        "postgres://\(s.username)@\(s.host):\(s.port)/\(s.database)?sslmode=disable"
    }

    /// Existing databases: migration 0006 chains the events stored before it.
    @Test func theMigrationChainsTheEventsAlreadyStored() async throws {
        try await TestServers.withDatabase(migrated: false) { database in
            let migrations = try TestServers.migrator().migrations
            _ = try await database.migrate(Migrator(migrations: migrations.filter { $0.version < 6 }))
            try await database.execute("""
                INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, data, metadata)
                SELECT 'old-' || (i % 3), (i / 3) + 1, gen_random_uuid(), 'Old', 1, jsonb_build_object('i', i), '{}'::jsonb
                FROM generate_series(0, 29) AS i
                """)
            _ = try await database.migrate(Migrator(migrations: migrations))
            // New appends continue the migrated chains.
            _ = try await database.eventStore.append(to: "old-1", expected: .exact(10), events: [Self.event(11)])
            // A raw insert (an operator's import) is chained by the trigger, row after row.
            try await database.execute("""
                INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, data)
                SELECT 'old-2', 10 + i, gen_random_uuid(), 'Imported', 1, jsonb_build_object('i', i) FROM generate_series(1, 2) AS i
                """)
            let result = try await PostgresAuditLog(client: database.client, logger: TestServers.logger).verify(key: nil)
            #expect(result.clean, "\(result.findings)")
            #expect(result.streams == 3 && result.events == 33)
        }
    }
}

extension CheckpointKey {
    /// The tests' fixed key, as the environment gives it.
    var signingKeyForTests: String { Data((0..<32).map { UInt8($0) }).base64EncodedString() }
}
