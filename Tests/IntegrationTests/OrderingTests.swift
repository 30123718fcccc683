import Adapters
import Commands
import Events
import Foundation
import Logging
import PostgresNIO
import Projections
import Workers
import Synchronization
import Testing

/// The ordering invariant of ARCHITECTURE.md under load: a subscriber following the global log
/// sees every committed event exactly once, in checkpoint order, and no rolled-back event, while
/// 16 writers append, some transactions roll back, and one session sits idle in its transaction.
@Suite(.serialized) struct OrderingTests {
    final class Seen: Sendable {
        let ids = Mutex<[UUID]>([])
        let checkpoints = Mutex<[Checkpoint]>([])
        func add(_ batch: [RecordedEvent]) {
            ids.withLock { $0 += batch.map(\.eventID) }
            checkpoints.withLock { $0 += batch.map(\.checkpoint) }
        }
        var count: Int { ids.withLock { $0.count } }
    }

    static let writers = 16
    static let eventsPerWriter = 6_300  // 16 × 6,300 = 100,800 events
    static let payload = Data(#"{"note":"ordering test event"}"#.utf8)

    static func event() -> NewEvent {
        NewEvent(eventID: UUID(), eventType: "OrderingTestEvent", schemaVersion: 1, data: payload, metadata: EventMetadata())
    }

    /// Inserts `count` events in a transaction of its own and then runs `finish` ("COMMIT" or
    /// "ROLLBACK") after `hold`.
    static func rawTransaction(
        _ client: PostgresClient, count: Int, hold: Duration, finish: String, logger: Logger
    ) async throws -> [UUID] {
        let ids = (0..<count).map { _ in UUID() }
        try await client.withConnection { connection in
            _ = try await connection.query("BEGIN", logger: logger)
            let stream = "raw-\(UUID().uuidString.lowercased())"
            for (index, id) in ids.enumerated() {
                _ = try await connection.query("""
                    INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, data)
                    VALUES (\(stream), \(Int64(index + 1)), \(id), 'OrderingTestEvent', 1, '{}'::jsonb)
                    """, logger: logger)
            }
            try await Task.sleep(for: hold)
            _ = try await connection.query(PostgresQuery(unsafeSQL: finish), logger: logger)
        }
        return ids
    }

    @Test func aFollowerSeesEveryCommittedEventOnceInOrderAndNoRolledBackOne() async throws {
        try await TestServers.withDatabase(listen: true) { database in
            let logger = TestServers.logger
            let seen = Seen()
            let follower = EventFollower(store: database.eventStore, signal: database.signal, batchSize: 1000, pollInterval: .milliseconds(200))
            let reader = Task { try await follower.follow(from: .start) { seen.add($0) } }

            let (committed, rolledBack) = try await withThrowingTaskGroup(of: ([UUID], [UUID]).self) { group in
                for writer in 0..<Self.writers {
                    group.addTask {
                        var ids: [UUID] = []
                        var written = 0
                        var round = 0
                        while written < Self.eventsPerWriter {
                            round += 1
                            // Batches of 1 to 12 events onto a few hundred shared streams.
                            let size = min(Self.eventsPerWriter - written, 1 + (round * 7 + writer) % 12)
                            let events = (0..<size).map { _ in Self.event() }
                            let stream = "order-\((round * 31 + writer * 17) % 400)"
                            _ = try await database.eventStore.append(to: stream, expected: .any, events: events)
                            ids += events.map(\.eventID)
                            written += size
                        }
                        return (ids, [])
                    }
                }
                // Transactions that insert and roll back while the writers run.
                group.addTask {
                    var rolledBack: [UUID] = []
                    for _ in 0..<200 {
                        rolledBack += try await Self.rawTransaction(
                            database.client, count: 3, hold: .milliseconds(5), finish: "ROLLBACK", logger: logger)
                    }
                    return ([], rolledBack)
                }
                // One session idle in its transaction for 3 s: later transactions commit past it.
                group.addTask {
                    try await Task.sleep(for: .milliseconds(300))
                    return (try await Self.rawTransaction(database.client, count: 2, hold: .seconds(3), finish: "COMMIT", logger: logger), [])
                }
                var committed: [UUID] = []
                var rolledBack: [UUID] = []
                for try await (c, r) in group {
                    committed += c
                    rolledBack += r
                }
                return (committed, rolledBack)
            }

            #expect(committed.count >= 100_000)
            for _ in 0..<600 where seen.count < committed.count { try await Task.sleep(for: .milliseconds(100)) }
            // Anything seen twice would show up now, after the reader has caught up.
            try await Task.sleep(for: .milliseconds(500))
            reader.cancel()
            _ = await reader.result

            let ids = seen.ids.withLock { $0 }
            let checkpoints = seen.checkpoints.withLock { $0 }
            #expect(ids.count == committed.count, "saw \(ids.count) of \(committed.count) committed events")
            let seenSet = Set(ids)
            let missing = Set(committed).subtracting(seenSet)
            let unexpected = seenSet.subtracting(committed)
            // Counts only: Swift Testing prints the operands of a failed expectation.
            let duplicates = ids.count - seenSet.count
            let backwards = zip(checkpoints, checkpoints.dropFirst()).filter { $0 >= $1 }.count
            let leaked = seenSet.intersection(rolledBack).count
            #expect(duplicates == 0, "events were delivered twice")
            #expect(missing.count == 0, "committed events were never delivered, e.g. \(missing.prefix(3))")
            #expect(unexpected.count == 0, "delivered events were never committed, e.g. \(unexpected.prefix(3))")
            #expect(leaked == 0, "rolled-back events were delivered")
            let firstBackwards = zip(checkpoints.indices, zip(checkpoints, checkpoints.dropFirst())).first { $0.1.0 >= $0.1.1 }
                .map { index, pair in "at delivery \(index): \(pair.0) then \(pair.1), same event: \(ids[index] == ids[index + 1])" }
            #expect(backwards == 0, "checkpoints did not strictly increase \(firstBackwards ?? "")")
            // The hazard was real: some event arrived after one with a higher global position,
            // which a reader of "position > checkpoint" would have skipped.
            let positions = checkpoints.map(\.position)
            var highest: Int64 = 0
            var overtaken = 0
            for position in positions {
                if position < highest { overtaken += 1 }
                highest = max(highest, position)
            }
            #expect(overtaken > 0, "no transaction committed out of position order: the test proved nothing")
        }
    }
}
