import Adapters
import Foundation
import Synchronization
import Testing

/// Issue 17, finding 6: RabbitMQ closed the server's idle connections every minute or two
/// ("missed heartbeats from client, timeout: 30s"), because rabbitmq-c sends heartbeats only while
/// it is called; a worker's retry publish then failed on the dead connection. With a 1 s heartbeat,
/// both kinds of connection sit idle for 5 s (more than twice the timeout) and go on working.
@Suite struct HeartbeatTests {
    @Test func idleConnectionsOutliveTheHeartbeatTimeout() async throws {
        var settings = try TestServers.amqp()
        settings.heartbeatSeconds = 1
        let (topology, exchange, queue, _) = AMQPTests.topology()
        let publisher = AMQPPublisher(settings: settings, topology: topology, logger: TestServers.logger)
        defer { publisher.close() }
        try await publisher.publish(AMQPTests.messages(1, exchange: exchange))
        let consumer = AMQPConsumer(settings: settings, topology: topology, queue: queue, prefetch: 5, logger: TestServers.logger)
        let stream = try await consumer.deliveries()
        var iterator = stream.makeAsyncIterator()
        let first = try #require(try await iterator.next())
        try await consumer.ack(first)

        try await Task.sleep(for: .seconds(5))

        // The publisher's connection is the one it had: the broker did not close it for silence.
        try await publisher.publish([OutgoingMessage(exchange: exchange, routingKey: "work", messageID: "after-idle", type: "T", body: Data("{}".utf8))])
        #expect(publisher.connectionsOpened == 1)
        // The consumer's stream did not end: its connection heartbeats while it polls.
        let second = try #require(try await iterator.next())
        #expect(second.messageID == "after-idle")
        try await consumer.ack(second)
    }

    @Test func aHeartbeatInTheURLIsReadAndBounded() throws {
        #expect(try AMQPSettings(url: "amqp://guest:guest@127.0.0.1:5672/%2f?heartbeat=7").heartbeatSeconds == 7)
        #expect(try AMQPSettings(url: "amqp://guest:guest@127.0.0.1:5672/%2f").heartbeatSeconds == 30)
        #expect(throws: (any Error).self) { try AMQPSettings(url: "amqp://127.0.0.1/%2f?heartbeat=soon") }
    }
}
