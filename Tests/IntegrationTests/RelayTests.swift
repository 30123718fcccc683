import Adapters
import Composition
import Commands
import Events
import Foundation
import Projections
import Workers
import Synchronization
import Testing

@Suite(.serialized) struct RelayTests {
    /// A queue bound to every agent integration event, and the ids that reached it. The `events`
    /// exchange is shared by every test database's relay, so only messages of the test's own
    /// tenant (its database's name) count.
    final class Inbox: Sendable {
        let tenant: String
        init(tenant: String) { self.tenant = tenant }
        let ids = Mutex<Set<String>>([])
        let bodies = Mutex<[String: Data]>([:])
        let deliveries = Mutex(0)
        var count: Int { ids.withLock { $0.count } }
    }

    /// The relay's topology and the test's queue, bound to every agent event.
    static func topology(queue: String) -> AMQPTopology {
        RelayStore.topology(namespace: "relay-test", contracts: .chronicle).merging(
            AMQPTopology(queues: [.init(name: queue, expires: .seconds(120))], bindings: [(queue, "events", "agent.#")]))
    }

    static func consume(_ settings: AMQPSettings, queue: String, into inbox: Inbox) -> Task<Void, Never> {
        let topology = Self.topology(queue: queue)
        let consumer = AMQPConsumer(settings: settings, topology: topology, queue: queue, prefetch: 50, logger: TestServers.logger)
        return Task {
            // Reconnects for as long as the test runs: the broker may be down for a while.
            while !Task.isCancelled {
                do {
                    for try await delivery in try await consumer.deliveries() {
                        let message = try? EventCoding.decode(IntegrationMessage.self, from: delivery.body)
                        if let id = delivery.messageID, message?.tenantID == inbox.tenant {
                            inbox.ids.withLock { _ = $0.insert(id) }
                            inbox.bodies.withLock { $0[id] = delivery.body }
                        }
                        inbox.deliveries.withLock { $0 += 1 }
                        try await consumer.ack(delivery)
                    }
                } catch {}
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// The relay, whose publisher also declares the test's queue before its first message: a
    /// consumer still connecting (a loaded CI machine took over the 500 ms once allowed) must not
    /// find the first events already dropped as unroutable.
    static func relay(_ database: ChronicleDatabase, _ settings: AMQPSettings, queue: String) -> Task<Void, any Error> {
        let publisher = AMQPPublisher(settings: settings, topology: Self.topology(queue: queue), confirmTimeout: .seconds(3), logger: TestServers.logger)
        let store = RelayStore(
            publisher: publisher, contracts: .chronicle, registry: .chronicle, client: database.client, namespace: "relay-test", logger: TestServers.logger)
        let runner = try! TestServers.platform(database).runner(store, standbyInterval: .milliseconds(300), pollInterval: .milliseconds(200))
        return Task { try await runner.run() }
    }

    static func appendAgents(_ database: ChronicleDatabase, count: Int) async throws -> [UUID] {
        let tenant = database.settings.database
        let handler = CommandHandler<AgentDecider>(store: database.eventStore)
        var ids: [UUID] = []
        for n in 0..<count {
            let id = UUID()
            let result = try await handler.handle(
                .create(CreateAgent(agentID: id, ownerID: "o", name: "agent \(n)", instructions: "i",
                    settings: AgentModelSettings(model: "offline", temperature: 0.5, maxTokens: 10), now: Date())),
                on: StreamID(category: "agent", id: id), context: CommandContext(tenantID: tenant, correlationID: "req-\(n)"))
            ids += try await database.eventStore.readStream(result.append!.streamID, from: 1, direction: .forward, limit: 10).map(\.eventID)
        }
        return ids
    }

    static func waitFor(_ inbox: Inbox, count: Int, timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while inbox.count < count, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
    }

    @Test func integrationEventsArePublishedWithTheirIDsRoutingKeysAndCurrentShape() async throws {
        try await TestServers.withDatabase(listen: true) { database in
            let settings = try TestServers.amqp()
            let inbox = Inbox(tenant: database.settings.database)
            let queue = "test.relay.\(UUID().uuidString.prefix(8))"
            let consumer = Self.consume(settings, queue: queue, into: inbox)
            defer { consumer.cancel() }
            let relay = Self.relay(database, settings, queue: queue)
            defer { relay.cancel() }
            let ids = try await Self.appendAgents(database, count: 10)
            try await Self.waitFor(inbox, count: ids.count)
            #expect(inbox.ids.withLock { $0 } == Set(ids.map { $0.uuidString.lowercased() }))
            let body = try #require(inbox.bodies.withLock { $0[ids[3].uuidString.lowercased()] })
            let message = try EventCoding.decode(IntegrationMessage.self, from: body)
            #expect(message.eventType == "AgentCreated" && message.contractVersion == 1 && message.correlationID == "req-3")
            #expect(message.data["settings"]?["model"] == .string("offline"))
        }
    }

    @Test func everyIntegrationEventArrivesAcrossABrokerOutage() async throws {
        try await PrivateServer.with("rabbitmq") { broker in try await Self.acrossABrokerOutage(broker) }
    }

    static func acrossABrokerOutage(_ broker: PrivateServer) async throws {
        try await TestServers.withDatabase(listen: true) { database in
            let settings = try AMQPSettings(url: broker.amqpURL)
            let inbox = Inbox(tenant: database.settings.database)
            let consumer = Self.consume(settings, queue: "outage.inbox", into: inbox)
            defer { consumer.cancel() }
            let relay = Self.relay(database, settings, queue: "outage.inbox")
            defer { relay.cancel() }

            var expected = try await Self.appendAgents(database, count: 20)
            try await Self.waitFor(inbox, count: expected.count)
            #expect(inbox.count == expected.count, "before the outage")

            try await broker.stop()
            expected += try await Self.appendAgents(database, count: 20)  // while the broker is down
            try await Task.sleep(for: .seconds(2))
            try await broker.start()
            expected += try await Self.appendAgents(database, count: 10)

            try await Self.waitFor(inbox, count: expected.count)
            let missing = Set(expected.map { $0.uuidString.lowercased() }).subtracting(inbox.ids.withLock { $0 })
            #expect(missing.count == 0, "integration events lost across the outage")
            #expect(inbox.count == expected.count)
            print("broker outage: \(expected.count) events, \(inbox.deliveries.withLock { $0 }) deliveries (repeats are allowed)")
        }
    }
}
