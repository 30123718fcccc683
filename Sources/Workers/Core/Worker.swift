import Commands
import Events
import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// A unit of work from a queue: its id (the message id, i.e. the event id), type, body and try.
public struct WorkItem: Sendable {
    public var messageID: String
    public var type: String
    public var body: Data
    /// 1 for the first delivery.
    public var attempt: Int
    /// Opaque to the worker: what the queue needs to settle it.
    public var receipt: UInt64

    public init(messageID: String, type: String, body: Data, attempt: Int, receipt: UInt64) {
        self.messageID = messageID
        self.type = type
        self.body = body
        self.attempt = attempt
        self.receipt = receipt
    }
}

/// Where work comes from and how it is settled (RabbitMQ in Adapters).
public protocol WorkQueue: Sendable {
    /// Deliveries until the connection is lost (the stream then ends with an error).
    func items() async throws -> AsyncThrowingStream<WorkItem, any Error>
    func complete(_ item: WorkItem) async throws
    /// Schedules the item again after `delay` as try `item.attempt + 1`, and settles this one.
    func retry(_ item: WorkItem, after delay: Duration) async throws
    /// Gives up: the item goes to the dead-letter queue.
    func deadLetter(_ item: WorkItem) async throws
    /// Puts the item back for another delivery, as it is (a settle that failed). A queue whose
    /// connection is gone has released it already: the broker redelivers what was not settled.
    func release(_ item: WorkItem) async throws
}

/// Message ids a consumer has processed: a redelivered message has no second effect.
public protocol Inbox: Sendable {
    func contains(_ messageID: String, consumer: String) async throws -> Bool
    func record(_ messageID: String, consumer: String) async throws
}

/// Competing consumers of one queue: bounded concurrency, retry with backoff, dead-letter after
/// `maxAttempts`, and an inbox. The handler must be idempotent for the window between its effect
/// and the inbox record (a crash there redelivers); handlers that append through command handlers
/// with the message id as command id are.
public struct Worker: Service {
    public let name: String
    let queue: any WorkQueue
    let inbox: any Inbox
    let concurrency: Int
    let maxAttempts: Int
    let backoff: [Duration]
    let handler: @Sendable (WorkItem) async throws -> Void
    let giveUp: (@Sendable (WorkItem, any Error) async throws -> Void)?
    let logger: Logger
    let inFlight: Gauge
    let failures: Counter
    /// Whether the pool can take work, for `/health`.
    public let status: WorkerStatus
    /// How long an item may run before the pool says so in its log (and again each time as long).
    let slowAfter: Duration

    /// `giveUp` records the end of the work an item carried (a terminal event saying why) before
    /// the item is dead-lettered, so nothing waits on it for good. `stallAfter`: how long every
    /// slot may be busy with nothing settled before the pool reports that it cannot take work.
    public init(
        name: String, queue: any WorkQueue, inbox: any Inbox, concurrency: Int = 10, maxAttempts: Int = 4,
        backoff: [Duration] = [.seconds(1), .seconds(2), .seconds(4)], stallAfter: Duration = .seconds(300), slowAfter: Duration = .seconds(60),
        metrics: any MetricsFactory = NOOPMetricsHandler.instance, logger: Logger,
        giveUp: (@Sendable (WorkItem, any Error) async throws -> Void)? = nil, handler: @escaping @Sendable (WorkItem) async throws -> Void
    ) {
        self.name = name
        self.queue = queue
        self.inbox = inbox
        self.concurrency = max(1, concurrency)
        self.maxAttempts = max(1, maxAttempts)
        self.backoff = backoff.isEmpty ? [.seconds(1)] : backoff
        self.handler = handler
        self.giveUp = giveUp
        status = WorkerStatus(concurrency: max(1, concurrency), stallAfter: stallAfter)
        self.slowAfter = slowAfter
        var logger = logger
        logger[metadataKey: "worker"] = "\(name)"
        self.logger = logger
        inFlight = Gauge(label: "chronicle_worker_in_flight", dimensions: [("worker", name)], factory: metrics)
        failures = Counter(label: "chronicle_worker_failures_total", dimensions: [("worker", name)], factory: metrics)
    }

    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await consume()
                } catch is CancellationError {
                    return
                } catch {
                    status.disconnected("\(error)")
                    if Task.isCancelled { return }
                    logger.warning("work queue lost; reconnecting", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
    }

    func consume() async throws {
        let items = try await queue.items()
        status.connected()
        try await withThrowingTaskGroup(of: Void.self) { group in
            var running = 0
            for try await item in items {
                if running == concurrency {
                    try await group.next()
                    running -= 1
                }
                running += 1
                inFlight.record(running)
                status.started()
                group.addTask {
                    await process(item)
                    status.settled()
                }
            }
            try await group.waitForAll()
        }
    }

    /// Handles one item and settles it; never throws. A settle that fails (a retry's publish, an
    /// ack) releases the item, so it never holds a prefetch slot for good; if even that fails, the
    /// queue connection is gone and the broker redelivers the item.
    func process(_ item: WorkItem) async {
        do {
            if try await inbox.contains(item.messageID, consumer: name) {
                try await queue.complete(item)
                return
            }
            do {
                try await watchingForSlowness(item) { try await handler(item) }
            } catch {
                failures.increment()
                if item.attempt < maxAttempts {
                    let delay = backoff[min(item.attempt - 1, backoff.count - 1)]
                    logger.warning("work failed; retrying", metadata: ["message.id": "\(item.messageID)", "attempt": "\(item.attempt)", "error": "\(error)"])
                    try await queue.retry(item, after: delay)
                } else {
                    logger.error("work failed for good; dead-lettered", metadata: ["message.id": "\(item.messageID)", "error": "\(error)"])
                    // Recorded first: a give-up that cannot be recorded leaves the item to come
                    // back rather than vanish into the dead-letter queue unannounced.
                    try await giveUp?(item, error)
                    try await queue.deadLetter(item)
                }
                return
            }
            try await inbox.record(item.messageID, consumer: name)
            try await queue.complete(item)
        } catch {
            logger.warning("could not settle work item; releasing it", metadata: ["message.id": "\(item.messageID)", "error": "\(error)"])
            do {
                try await queue.release(item)
            } catch {
                logger.warning("could not release work item; the broker redelivers it", metadata: ["message.id": "\(item.messageID)", "error": "\(error)"])
            }
        }
    }
}

extension Worker {
    /// Runs `body`, logging a warning each `slowAfter` it is still running: a handler that hangs
    /// (a call that never answers) is then named in the log with its message, instead of showing
    /// only as a run the watchdog fails much later.
    func watchingForSlowness(_ item: WorkItem, _ body: () async throws -> Void) async throws {
        let started = ContinuousClock.now
        let warning = Task { [logger, slowAfter] in
            while true {
                try await Task.sleep(for: slowAfter)
                let seconds = (ContinuousClock.now - started).components.seconds
                logger.warning("work item still running", metadata: [
                    "message.id": "\(item.messageID)", "message.type": "\(item.type)", "attempt": "\(item.attempt)", "seconds": "\(seconds)",
                ])
            }
        }
        defer { warning.cancel() }
        try await body()
    }
}

extension WorkItem {
    /// A work message is a relayed `...Requested` event; this is the event and the execution it
    /// names (its `execution_id`). A message without one is malformed: `code` says whose.
    public func requestedExecution(code: DomainError.Code) throws -> (message: IntegrationMessage, executionID: UUID) {
        let (message, id) = try named("execution_id", code: code)
        return (message, id)
    }

    /// The relayed event and the id it carries under `key` (snake_case, as events are stored).
    public func named(_ key: String, code: DomainError.Code) throws -> (message: IntegrationMessage, id: UUID) {
        let message = try EventCoding.decode(IntegrationMessage.self, from: body)
        guard let raw = message.data[key]?.stringValue, let id = UUID(uuidString: raw) else {
            throw DomainError(.invalid, code: code, "the work message has no \(key)")
        }
        return (message, id)
    }
}
