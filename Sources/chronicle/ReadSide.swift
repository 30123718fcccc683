import Adapters
import Commands
import Events
import Foundation
import Logging
import Metrics
import Projections
import ServiceLifecycle

/// The composition root of the read side: every projector Chronicle runs, on which store.
/// Adding a read model means adding it here (and to the README's list).
struct ReadSide: Sendable {
    let database: ChronicleDatabase
    let redis: RedisClient
    let metrics: any MetricsFactory
    let logger: Logger

    /// Names this deployment's work queues and Redis keys: the Postgres database's name.
    var namespace: String { database.settings.database }

    var parking: PostgresParkedEventStore { PostgresParkedEventStore(client: database.client, logger: logger) }

    var leases: PostgresLeaseProvider { PostgresLeaseProvider(client: database.client, logger: logger) }

    func runner<S: ProjectionStore>(_ store: S, lagAlsoReportedAs alias: String? = nil) -> ProjectorRunner<S> {
        ProjectorRunner(
            store: store, events: database.eventStore, signal: database.signal, leases: leases, parking: parking,
            metrics: metrics, lagAlsoReportedAs: alias, logger: logger)
    }

    func postgres<P: PostgresProjection>(_ projection: P) -> PostgresProjectionStore<P> {
        PostgresProjectionStore(projection: projection, client: database.client, logger: logger)
    }

    func redis<P: RedisProjection>(_ projection: P) -> RedisProjectionStore<P> {
        RedisProjectionStore(projection: projection, redis: redis, parking: parking, keyspace: namespace, logger: logger)
    }

    /// The projector services, one per read model.
    var services: [any Service] {
        [
            runner(postgres(AgentListProjection())),
            runner(postgres(AgentExecutionsProjection())),
            runner(postgres(AgentUsageProjection())),
            runner(postgres(CodeExecutionsProjection())),
            runner(postgres(EventCountsProjection())),
            runner(redis(AgentSummaryProjection())),
            runner(redis(ExecutionCacheProjection())),
        ]
    }

    /// What the Agents query routes read.
    var agentQueries: AgentReadModels {
        AgentReadModels(
            client: database.client, redis: redis, agents: postgres(AgentListProjection()), executions: postgres(AgentExecutionsProjection()),
            cache: redis(ExecutionCacheProjection()), logger: logger)
    }

    /// What the sandbox's query routes read.
    var sandboxQueries: SandboxReadModels {
        SandboxReadModels(client: database.client, store: postgres(CodeExecutionsProjection()), logger: logger)
    }

    /// The sandbox workers: competing consumers of `code.execute`, at most `concurrency` runs at
    /// once in this process. No retry delays beyond the first: a run that failed to record is
    /// simply the next attempt.
    func sandboxWorker(_ amqp: AMQPSettings, _ sandbox: SandboxConfiguration, runner: any SandboxRunner) -> Worker {
        let delays: [Duration] = [.seconds(1), .seconds(5)]
        let queue = AMQPWorkQueue(
            settings: amqp, exchange: "code.execute", routingKey: namespace, queue: "\(namespace).code.execute", delays: delays,
            prefetch: UInt16(clamping: sandbox.settings.concurrency), logger: logger)
        let worker = CodeExecutionWorker(store: database.eventStore, sandbox: runner, logger: logger)
        // A run lasts at most its time limit; a full pool with nothing settled for twice the
        // longest one cannot take work.
        return Worker(
            name: "code-execute", queue: queue, inbox: PostgresInbox(client: database.client, logger: logger),
            concurrency: sandbox.settings.concurrency, maxAttempts: delays.count + 1, backoff: delays,
            stallAfter: .seconds(2 * sandbox.maxTimeoutSeconds + 30), metrics: metrics, logger: logger, giveUp: worker.ending.giveUp, handler: worker.handle)
    }

    /// The agent workers: competing consumers of `agent.execute`.
    func agentWorker(_ amqp: AMQPSettings, _ agents: AgentsConfiguration, sandbox: (runner: any SandboxRunner, limits: SandboxLimits)?) -> Worker {
        let delays: [Duration] = [.seconds(1), .seconds(5), .seconds(30)]
        let queue = AMQPWorkQueue(
            settings: amqp, exchange: "agent.execute", routingKey: namespace, queue: "\(namespace).agent.execute", delays: delays,
            prefetch: UInt16(clamping: agents.workerConcurrency), logger: logger)
        let runner = AgentExecutionRunner(
            store: database.eventStore, model: agents.model, prices: agents.prices, sandbox: sandbox, logger: logger)
        return Worker(
            name: "agent-execute", queue: queue, inbox: PostgresInbox(client: database.client, logger: logger),
            concurrency: agents.workerConcurrency, maxAttempts: delays.count + 1, backoff: delays,
            stallAfter: .seconds(2 * agents.timeoutSeconds + 30), metrics: metrics, logger: logger, giveUp: runner.ending.giveUp, handler: runner.handle)
    }

    /// Fails runs of either module that made no progress for longer than `policy` allows.
    func runWatchdog(agents: AgentsConfiguration, sandbox: any SandboxRunner, policy: StallPolicy) -> RunWatchdog {
        let agentRuns = AgentExecutionRunner(store: database.eventStore, model: agents.model, prices: agents.prices, logger: logger).ending
        let codeRuns = CodeExecutionWorker(store: database.eventStore, sandbox: sandbox, logger: logger).ending
        let agentQueries = agentQueries, sandboxQueries = sandboxQueries
        return RunWatchdog(
            runs: [
                SupervisedRuns(name: "agents", candidates: { try await agentQueries.unfinishedExecutions(requestedBefore: $0, limit: $1) },
                    failIfStalled: { try await agentRuns.failIfStalled($0, policy: $1, now: $2) }),
                SupervisedRuns(name: "sandbox", candidates: { try await sandboxQueries.unfinished(requestedBefore: $0, limit: $1) },
                    failIfStalled: { try await codeRuns.failIfStalled($0, policy: $1, now: $2) }),
            ],
            policy: policy, logger: logger)
    }

    /// The relay: integration events from the log to RabbitMQ, with publisher confirms.
    func relay(_ amqp: AMQPSettings) -> ProjectorRunner<RelayStore> {
        let publisher = AMQPPublisher(settings: amqp, topology: RelayStore.topology(namespace: namespace), logger: logger)
        return runner(
            RelayStore(publisher: publisher, client: database.client, namespace: namespace, metrics: metrics, logger: logger),
            lagAlsoReportedAs: RelayStore.outboxDepthMetric)
    }

    /// Name and checkpoint of every projector, read from its own store.
    func checkpoints() async throws -> [(name: String, checkpoint: Checkpoint)] {
        [
            (AgentListProjection().name, try await postgres(AgentListProjection()).checkpoint()),
            (AgentExecutionsProjection().name, try await postgres(AgentExecutionsProjection()).checkpoint()),
            (AgentUsageProjection().name, try await postgres(AgentUsageProjection()).checkpoint()),
            (CodeExecutionsProjection().name, try await postgres(CodeExecutionsProjection()).checkpoint()),
            (EventCountsProjection().name, try await postgres(EventCountsProjection()).checkpoint()),
            (AgentSummaryProjection().name, try await redis(AgentSummaryProjection()).checkpoint()),
            (ExecutionCacheProjection().name, try await redis(ExecutionCacheProjection()).checkpoint()),
        ]
    }
}
