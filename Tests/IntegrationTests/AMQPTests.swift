import Adapters
import Foundation
import Synchronization
import Testing

@Suite struct AMQPTests {
    /// A private exchange, a work queue and its dead-letter queue, named for one test.
    static func topology() -> (AMQPTopology, exchange: String, queue: String, dlq: String) {
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let exchange = "test.\(suffix)", queue = "test.\(suffix).work", dlq = "test.\(suffix).dlq"
        let topology = AMQPTopology(
            exchanges: [(exchange, "direct"), ("\(exchange).dlx", "direct")],
            queues: [
                .init(name: queue, deadLetterExchange: "\(exchange).dlx", deadLetterRoutingKey: "dead"),
                .init(name: dlq),
            ],
            bindings: [(queue, exchange, "work"), (dlq, "\(exchange).dlx", "dead")])
        return (topology, exchange, queue, dlq)
    }

    static func messages(_ count: Int, exchange: String) -> [OutgoingMessage] {
        (0..<count).map { n in
            OutgoingMessage(exchange: exchange, routingKey: "work", messageID: "m-\(n)", type: "TestWork", body: Data("{\"n\":\(n)}".utf8), attempt: 1 + n % 3)
        }
    }

    /// Collects up to `count` deliveries, or what arrived before `timeout`.
    static func receive(_ consumer: AMQPConsumer, count: Int, timeout: Duration = .seconds(10), ack: Bool = true) async throws -> [Delivery] {
        let stream = try await consumer.deliveries()
        final class Collected: Sendable {
            let deliveries = Mutex<[Delivery]>([])
        }
        let received = Collected()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for try await delivery in stream {
                    if ack { try await consumer.ack(delivery) }
                    if received.deliveries.withLock({ $0.append(delivery); return $0.count }) == count { return }
                }
            }
            group.addTask { try await Task.sleep(for: timeout) }
            try await group.next()
            group.cancelAll()
        }
        return received.deliveries.withLock { $0 }
    }

    @Test func publishedMessagesAreConfirmedThenConsumedWithTheirIDsTypesAndHeaders() async throws {
        let (topology, exchange, queue, _) = Self.topology()
        let settings = try TestServers.amqp()
        let publisher = AMQPPublisher(settings: settings, topology: topology, logger: TestServers.logger)
        defer { publisher.close() }
        try await publisher.publish(Self.messages(50, exchange: exchange))
        let consumer = AMQPConsumer(settings: settings, topology: topology, queue: queue, prefetch: 20, logger: TestServers.logger)
        let received = try await Self.receive(consumer, count: 50)
        #expect(received.map(\.messageID) == (0..<50).map { "m-\($0)" })
        #expect(received.allSatisfy { $0.type == "TestWork" && $0.routingKey == "work" && $0.exchange == exchange })
        #expect(received.map(\.attempt) == (0..<50).map { 1 + $0 % 3 })
        #expect(String(decoding: received[7].body, as: UTF8.self) == #"{"n":7}"#)
    }

    @Test func anUnackedMessageIsRedeliveredToTheNextConsumer() async throws {
        let (topology, exchange, queue, _) = Self.topology()
        let settings = try TestServers.amqp()
        let publisher = AMQPPublisher(settings: settings, topology: topology, logger: TestServers.logger)
        defer { publisher.close() }
        try await publisher.publish(Self.messages(1, exchange: exchange))
        let first = AMQPConsumer(settings: settings, topology: topology, queue: queue, logger: TestServers.logger)
        let unacked = try await Self.receive(first, count: 1, ack: false)
        #expect(unacked.first?.redelivered == false)
        try await Task.sleep(for: .milliseconds(300))  // the first consumer's connection closes
        let second = AMQPConsumer(settings: settings, topology: topology, queue: queue, logger: TestServers.logger)
        let again = try await Self.receive(second, count: 1)
        #expect(again.first?.messageID == "m-0")
        #expect(again.first?.redelivered == true)
    }

    @Test func prefetchBoundsUnackedDeliveries() async throws {
        let (topology, exchange, queue, _) = Self.topology()
        let settings = try TestServers.amqp()
        let publisher = AMQPPublisher(settings: settings, topology: topology, logger: TestServers.logger)
        defer { publisher.close() }
        try await publisher.publish(Self.messages(10, exchange: exchange))
        let consumer = AMQPConsumer(settings: settings, topology: topology, queue: queue, prefetch: 3, logger: TestServers.logger)
        // Unacked, only the prefetch's 3 ever arrive, however long it waits (5 s: a loaded
        // machine may take a while to deliver even those).
        let received = try await Self.receive(consumer, count: 10, timeout: .seconds(5), ack: false)
        #expect(received.count == 3)
    }

    @Test func aRejectedMessageGoesToTheDeadLetterQueue() async throws {
        let (topology, exchange, queue, dlq) = Self.topology()
        let settings = try TestServers.amqp()
        let publisher = AMQPPublisher(settings: settings, topology: topology, logger: TestServers.logger)
        defer { publisher.close() }
        try await publisher.publish(Self.messages(1, exchange: exchange))
        let consumer = AMQPConsumer(settings: settings, topology: topology, queue: queue, logger: TestServers.logger)
        let stream = try await consumer.deliveries()
        for try await delivery in stream {
            try await consumer.nack(delivery, requeue: false)
            break
        }
        let dead = AMQPConsumer(settings: settings, topology: topology, queue: dlq, logger: TestServers.logger)
        let received = try await Self.receive(dead, count: 1)
        #expect(received.first?.messageID == "m-0")
    }

    @Test func aFailedPublishReconnectsOnTheNextOne() async throws {
        let (topology, exchange, queue, _) = Self.topology()
        let settings = try TestServers.amqp()
        let publisher = AMQPPublisher(settings: settings, topology: topology, logger: TestServers.logger)
        defer { publisher.close() }
        // Publishing to an exchange that does not exist closes the channel.
        await #expect(throws: AMQPError.self) {
            try await publisher.publish([OutgoingMessage(exchange: "no.such.exchange.\(UUID())", routingKey: "x", messageID: "lost", type: "T", body: Data())])
        }
        try await publisher.publish(Self.messages(1, exchange: exchange))
        let consumer = AMQPConsumer(settings: settings, topology: topology, queue: queue, logger: TestServers.logger)
        #expect(try await Self.receive(consumer, count: 1).first?.messageID == "m-0")
    }
}
