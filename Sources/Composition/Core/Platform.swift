import Adapters
import Commands
import Events
import Foundation
import Logging
import Metrics
import Projections
import Workers

/// What every module builds on in one process: the Postgres database (event store, read models,
/// leases, parking), Redis, RabbitMQ, metrics, and the push hub. Modules ask it for projector
/// runners, stores and work queues instead of wiring them by hand.
public struct Platform: Sendable {
    public let database: ChronicleDatabase
    public let redis: RedisClient
    public let amqp: AMQPSettings
    public let metrics: any MetricsFactory
    public let logger: Logger
    /// The process's one push hub on the log (run as a service by processes serving the API).
    public let hub: EventHub
    /// The Redis pub/sub doorbell between processes: a ring `log ...` wakes this process's readers
    /// of the log (the hub, the projectors) at once instead of at their next poll.
    public let doorbell: RedisDoorbell

    public init(
        database: ChronicleDatabase, redis: RedisClient, amqp: AMQPSettings, metrics: any MetricsFactory = NOOPMetricsHandler.instance,
        hubBuffer: Int = 1024, logger: Logger
    ) {
        self.database = database
        self.redis = redis
        self.amqp = amqp
        self.metrics = metrics
        self.logger = logger
        hub = EventHub(store: database.eventStore, signal: database.signal, bufferSize: hubBuffer, metrics: metrics, logger: logger)
        doorbell = RedisDoorbell(channel: "\(database.settings.database):doorbell", settings: redis.settings, publisher: redis, logger: logger)
        let signal = database.signal
        doorbell.onRing { payload in
            if payload.hasPrefix(CommitRing.prefix) { signal.signal() }
        }
    }

    /// Names this deployment's work queues and Redis keys: the Postgres database's name.
    public var namespace: String { database.settings.database }

    public var parking: PostgresParkedEventStore { PostgresParkedEventStore(client: database.client, logger: logger) }

    public var leases: PostgresLeaseProvider { PostgresLeaseProvider(client: database.client, logger: logger) }

    public func runner<S: ProjectionStore>(
        _ store: S, lagAlsoReportedAs alias: String? = nil, batchSize: Int? = nil, standbyInterval: Duration = .seconds(1),
        pollInterval: Duration = .milliseconds(500)
    ) -> ProjectorRunner<S> {
        ProjectorRunner(
            store: store, events: database.eventStore, signal: database.signal, leases: leases, parking: parking, batchSize: batchSize,
            standbyInterval: standbyInterval, pollInterval: pollInterval, metrics: metrics, lagAlsoReportedAs: alias, logger: logger)
    }

    public func postgres<P: PostgresProjection>(_ projection: P) -> PostgresProjectionStore<P> {
        PostgresProjectionStore(projection: projection, client: database.client, logger: logger)
    }

    public func redis<P: RedisProjection>(_ projection: P) -> RedisProjectionStore<P> {
        RedisProjectionStore(projection: projection, redis: redis, parking: parking, keyspace: namespace, logger: logger)
    }

    /// A worker: competing consumers of the deployment's queue on `exchange`, at most
    /// `concurrency` items at once in this process, retried after each of `delays`, then given up
    /// through `giveUp` and dead-lettered.
    public func worker(
        name: String, exchange: String, delays: [Duration], concurrency: Int, stallAfter: Duration,
        giveUp: @escaping @Sendable (WorkItem, any Error) async throws -> Void, handler: @escaping @Sendable (WorkItem) async throws -> Void
    ) -> ModuleWorker {
        let queue = AMQPWorkQueue(
            settings: amqp, exchange: exchange, routingKey: namespace, queue: "\(namespace).\(exchange)", delays: delays,
            prefetch: UInt16(clamping: concurrency), logger: logger)
        let worker = Worker(
            name: name, queue: queue, inbox: PostgresInbox(client: database.client, logger: logger), concurrency: concurrency,
            maxAttempts: delays.count + 1, backoff: delays, stallAfter: stallAfter, metrics: metrics, logger: logger, giveUp: giveUp,
            handler: handler)
        return ModuleWorker(worker: worker, exchange: exchange)
    }
}

/// A module's worker and the work exchange whose deployment queue it consumes.
public struct ModuleWorker: Sendable {
    public let worker: Worker
    public let exchange: String
}
