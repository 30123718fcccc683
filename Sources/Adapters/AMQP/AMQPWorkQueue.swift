import Foundation
import Logging
import Projections
import Workers

/// A work queue on RabbitMQ. `queue` is bound to `exchange` with `routingKey`; it dead-letters to
/// `<queue>.dlq`. A retry is published to a delay queue `<queue>.retry.<ms>` whose messages
/// expire back to `exchange`/`routingKey` after the delay; then the original is acked.
public struct AMQPWorkQueue: WorkQueue {
    public let queue: String
    let exchange: String
    let routingKey: String
    let delays: [Duration]
    let consumer: AMQPConsumer
    let publisher: AMQPPublisher

    public init(settings: AMQPSettings, exchange: String, routingKey: String, queue: String, delays: [Duration], prefetch: UInt16, logger: Logger) {
        self.queue = queue
        self.exchange = exchange
        self.routingKey = routingKey
        self.delays = delays
        let topology = Self.topology(exchange: exchange, routingKey: routingKey, queue: queue, delays: delays)
        consumer = AMQPConsumer(settings: settings, topology: topology, queue: queue, prefetch: prefetch, logger: logger)
        publisher = AMQPPublisher(settings: settings, topology: topology, logger: logger)
    }

    static func delayQueue(_ queue: String, _ delay: Duration) -> String {
        "\(queue).retry.\(delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000)ms"
    }

    public static func topology(exchange: String, routingKey: String, queue: String, delays: [Duration]) -> AMQPTopology {
        let dlx = "chronicle.dlx", retry = "chronicle.retry"
        var queues: [AMQPTopology.Queue] = [
            .init(name: queue, deadLetterExchange: dlx, deadLetterRoutingKey: "\(queue).dlq"),
            .init(name: "\(queue).dlq"),
        ]
        var bindings: [(queue: String, exchange: String, routingKey: String)] = [(queue, exchange, routingKey), ("\(queue).dlq", dlx, "\(queue).dlq")]
        for delay in delays {
            let name = delayQueue(queue, delay)
            queues.append(.init(name: name, deadLetterExchange: exchange, deadLetterRoutingKey: routingKey, messageTTL: delay))
            bindings.append((name, retry, name))
        }
        return AMQPTopology(exchanges: [(exchange, "direct"), (dlx, "direct"), (retry, "direct")], queues: queues, bindings: bindings)
    }

    public func items() async throws -> AsyncThrowingStream<WorkItem, any Error> {
        let deliveries = DeliveryIterator(try await consumer.deliveries())
        return AsyncThrowingStream(unfolding: {
            guard let delivery = try await deliveries.next() else { return nil }
            return WorkItem(
                messageID: delivery.messageID ?? "tag-\(delivery.deliveryTag)", type: delivery.type ?? "",
                body: delivery.body, attempt: delivery.attempt, receipt: delivery.deliveryTag)
        })
    }

    public func complete(_ item: WorkItem) async throws {
        try await consumer.ack(delivery(item))
    }

    public func retry(_ item: WorkItem, after delay: Duration) async throws {
        let target = delays.min { abs(($0 - delay) / .milliseconds(1)) < abs(($1 - delay) / .milliseconds(1)) } ?? delay
        let name = Self.delayQueue(queue, target)
        try await publisher.publish([OutgoingMessage(
            exchange: "chronicle.retry", routingKey: name, messageID: item.messageID, type: item.type, body: item.body,
            attempt: item.attempt + 1)])
        try await consumer.ack(delivery(item))
    }

    public func deadLetter(_ item: WorkItem) async throws {
        try await consumer.nack(delivery(item), requeue: false)
    }

    public func release(_ item: WorkItem) async throws {
        try await consumer.nack(delivery(item), requeue: true)
    }

    private func delivery(_ item: WorkItem) -> Delivery {
        Delivery(deliveryTag: item.receipt, exchange: exchange, routingKey: routingKey, messageID: item.messageID, type: item.type,
            body: item.body, redelivered: false, attempt: item.attempt)
    }
}

/// The consumer's iterator, advanced by one caller at a time (the unfolding stream's).
private final class DeliveryIterator: @unchecked Sendable {
    private var iterator: AsyncThrowingStream<Delivery, any Error>.AsyncIterator

    init(_ stream: AsyncThrowingStream<Delivery, any Error>) { iterator = stream.makeAsyncIterator() }

    func next() async throws -> Delivery? { try await iterator.next() }
}
