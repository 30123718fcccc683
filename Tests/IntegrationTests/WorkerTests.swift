import Adapters
import Foundation
import Projections
import Workers
import Synchronization
import Testing

@Suite struct WorkerTests {
    final class Log: Sendable {
        let attempts = Mutex<[String: [Int]]>([:])
        let running = Mutex(0)
        let maxRunning = Mutex(0)
        func attempts(of id: String) -> [Int] { attempts.withLock { $0[id] ?? [] } }
    }

    static func setup(_ database: ChronicleDatabase, delays: [Duration] = [.milliseconds(100), .milliseconds(200)]) throws
        -> (AMQPWorkQueue, AMQPPublisher, String)
    {
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let exchange = "test.work.\(suffix)", queue = "test.work.\(suffix).q"
        let queueAdapter = AMQPWorkQueue(
            settings: try TestServers.amqp(), exchange: exchange, routingKey: "do", queue: queue, delays: delays, prefetch: 10,
            logger: TestServers.logger)
        let publisher = AMQPPublisher(
            settings: try TestServers.amqp(),
            topology: AMQPWorkQueue.topology(exchange: exchange, routingKey: "do", queue: queue, delays: delays), logger: TestServers.logger)
        return (queueAdapter, publisher, exchange)
    }

    static func message(_ id: String, exchange: String) -> OutgoingMessage {
        OutgoingMessage(exchange: exchange, routingKey: "do", messageID: id, type: "TestWork", body: Data("{}".utf8))
    }

    static func worker(_ queue: AMQPWorkQueue, _ database: ChronicleDatabase, log: Log, concurrency: Int = 4, delays: [Duration] = [.milliseconds(100), .milliseconds(200)],
        handler: @escaping @Sendable (WorkItem) async throws -> Void = { _ in }) -> Worker
    {
        Worker(
            name: "test-\(queue.queue)", queue: queue, inbox: PostgresInbox(client: database.client, logger: TestServers.logger),
            concurrency: concurrency, maxAttempts: 3, backoff: delays, logger: TestServers.logger
        ) { item in
            log.attempts.withLock { $0[item.messageID, default: []].append(item.attempt) }
            let now = log.running.withLock { $0 += 1; return $0 }
            log.maxRunning.withLock { $0 = max($0, now) }
            defer { log.running.withLock { $0 -= 1 } }
            try await handler(item)
        }
    }

    static func waitUntil(timeout: Duration = .seconds(30), _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while !condition(), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
    }

    @Test func aRedeliveredMessageHasNoSecondEffect() async throws {
        try await TestServers.withDatabase { database in
            let (queue, publisher, exchange) = try Self.setup(database)
            defer { publisher.close() }
            try await publisher.connect()
            let log = Log()
            let task = Task { try await Self.worker(queue, database, log: log).run() }
            defer { task.cancel() }
            let ids = (0..<20).map { "work-\($0)" }
            try await publisher.publish(ids.map { Self.message($0, exchange: exchange) })
            try await Self.waitUntil { ids.allSatisfy { !log.attempts(of: $0).isEmpty } && log.running.withLock { $0 } == 0 }
            // Delivered again after they were processed, as a redelivery or the relay's
            // at-least-once republish does.
            try await publisher.publish(ids.prefix(5).map { Self.message($0, exchange: exchange) })
            try await Task.sleep(for: .seconds(1))
            #expect(ids.allSatisfy { log.attempts(of: $0) == [1] }, "a message was handled twice: \(log.attempts.withLock { $0 }.filter { $0.value.count > 1 })")
        }
    }

    @Test func failuresRetryWithBackoffThenGoToTheDeadLetterQueue() async throws {
        try await TestServers.withDatabase { database in
            let (queue, publisher, exchange) = try Self.setup(database)
            defer { publisher.close() }
            try await publisher.connect()
            struct Failed: Error {}
            let log = Log()
            let task = Task {
                try await Self.worker(queue, database, log: log) { item in
                    if item.messageID == "always" || (item.messageID == "twice" && item.attempt < 3) { throw Failed() }
                }.run()
            }
            defer { task.cancel() }
            try await publisher.publish([Self.message("twice", exchange: exchange), Self.message("always", exchange: exchange)])
            try await Self.waitUntil { log.attempts(of: "twice").count == 3 && log.attempts(of: "always").count == 3 }
            #expect(log.attempts(of: "twice") == [1, 2, 3])
            #expect(log.attempts(of: "always") == [1, 2, 3])
            let dead = AMQPConsumer(settings: try TestServers.amqp(), topology: AMQPTopology(), queue: "\(queue.queue).dlq", logger: TestServers.logger)
            let received = try await AMQPTests.receive(dead, count: 1, timeout: .seconds(10))
            #expect(received.map(\.messageID) == ["always"])
            try await Task.sleep(for: .milliseconds(500))
            #expect(log.attempts(of: "always").count == 3, "a dead-lettered message came back")
        }
    }

    @Test func concurrencyIsBounded() async throws {
        try await TestServers.withDatabase { database in
            let (queue, publisher, exchange) = try Self.setup(database)
            defer { publisher.close() }
            try await publisher.connect()
            let log = Log()
            // Each handler holds its slot until a second one runs beside it (or 5 s pass), so the
            // bound is reached on a loaded machine too, and a third concurrent one would show.
            let task = Task {
                try await Self.worker(queue, database, log: log, concurrency: 2) { _ in
                    let deadline = ContinuousClock.now.advanced(by: .seconds(5))
                    while log.running.withLock({ $0 }) < 2, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
                    try await Task.sleep(for: .milliseconds(50))
                }.run()
            }
            defer { task.cancel() }
            let ids = (0..<8).map { "slow-\($0)" }
            try await publisher.publish(ids.map { Self.message($0, exchange: exchange) })
            try await Self.waitUntil { ids.allSatisfy { !log.attempts(of: $0).isEmpty } && log.running.withLock { $0 } == 0 }
            #expect(ids.allSatisfy { log.attempts(of: $0) == [1] })
            #expect(log.maxRunning.withLock { $0 } == 2)
        }
    }
}
