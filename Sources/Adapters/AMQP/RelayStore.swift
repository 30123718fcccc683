import Events
import Foundation
import Logging
import Metrics
import PostgresNIO
import Projections
import Workers

/// The relay as a projection store: the events table is the outbox, and "applying" a batch means
/// publishing its integration events with publisher confirms and only then moving the checkpoint
/// (fenced by the lease's epoch). A crash between the two republishes the batch: delivery is at
/// least once, and the message id is the event id, so consumers drop repeats.
public struct RelayStore: ProjectionStore {
    public static let name = "relay"
    /// The outbox depth is the relay runner's lag in events, also reported under this name.
    public static let outboxDepthMetric = "chronicle_relay_outbox_depth"
    let publisher: AMQPPublisher
    let contracts: IntegrationContracts
    let registry: EventRegistry
    let client: PostgresClient
    let namespace: String
    let logger: Logger
    let published: Counter

    public init(
        publisher: AMQPPublisher, contracts: IntegrationContracts, registry: EventRegistry, client: PostgresClient,
        namespace: String, metrics: any MetricsFactory = NOOPMetricsHandler.instance, logger: Logger
    ) {
        self.publisher = publisher
        self.namespace = namespace
        self.contracts = contracts
        self.registry = registry
        self.client = client
        self.logger = logger
        published = Counter(label: "chronicle_relay_published_total", dimensions: [], factory: metrics)
    }

    public var projectorName: String { Self.name }

    /// The exchanges every publisher and consumer of Chronicle declares, and this deployment's
    /// work queues: declared here too, so that work the relay publishes before any worker has
    /// started waits in its queue instead of being dropped as unroutable.
    public static func topology(namespace: String, contracts: IntegrationContracts) -> AMQPTopology {
        let work = contracts.workExchanges.map { workQueue(exchange: $0, namespace: namespace, delays: []) }
        return AMQPTopology(
            exchanges: [(IntegrationContract.eventsExchange, "topic")] + work.flatMap(\.exchanges),
            queues: work.flatMap(\.queues), bindings: work.flatMap(\.bindings))
    }

    /// Work is per deployment: the queue `<namespace>.<exchange>` is bound to the direct exchange
    /// with the namespace as routing key, and the relay publishes work under it. The namespace is
    /// by default the Postgres database's name (as the Redis keyspace is), so deployments sharing
    /// a broker never take each other's work.
    public static func workQueue(exchange: String, namespace: String, delays: [Duration]) -> AMQPTopology {
        AMQPWorkQueue.topology(exchange: exchange, routingKey: namespace, queue: "\(namespace).\(exchange)", delays: delays)
    }

    var table: ProjectorCheckpointTable { ProjectorCheckpointTable(projector: Self.name, client: client, logger: logger) }

    public func prepareStorage() async throws {
        try await table.ensureRow()
    }

    public func checkpoint() async throws -> Checkpoint {
        try await table.read()
    }

    public func writes(for event: RecordedEvent) throws -> [OutgoingMessage] {
        guard let contract = contracts.byEventType[event.eventType] else { return [] }
        let current = try registry.upcast(type: event.eventType, version: event.schemaVersion, data: event.data)
        let body = try IntegrationMessage.body(
            eventID: event.eventID, eventType: event.eventType, contractVersion: contract.contractVersion,
            streamID: event.streamID, streamVersion: event.streamVersion, occurredAt: event.recordedAt,
            correlationID: event.metadata.correlationID, causationID: event.metadata.causationID,
            tenantID: event.metadata.tenantID, rawData: current)
        return [OutgoingMessage(
            exchange: contract.exchange, routingKey: contract.kind == .workMessage ? namespace : contract.routingKey, messageID: event.eventID.uuidString.lowercased(),
            type: event.eventType, body: body)]
    }

    public func apply(_ steps: [ProjectionStep<[OutgoingMessage]>], after: Checkpoint, through: Checkpoint, epoch: Int64) async throws {
        let messages = steps.flatMap { step -> [OutgoingMessage] in
            if case .apply(_, let messages) = step { return messages }
            return []
        }
        try await publisher.publish(messages)
        try await table.transaction { connection in
            try await table.advance(after: after, through: through, epoch: epoch, on: connection) { _ in
                try await PostgresParkedEventStore.insert(steps, projector: Self.name, on: connection, logger: logger)
            }
        }
        published.increment(by: messages.count)
    }

    public func applyReleased(_ events: [(RecordedEvent, [OutgoingMessage])], epoch: Int64) async throws {
        try await publisher.publish(events.flatMap(\.1))
        _ = try await client.query(
            "DELETE FROM parked_events WHERE projector = \(Self.name) AND event_id = ANY(\(events.map(\.0.eventID)))", logger: logger
        ).collect()
    }

}
