import Commands
import Events
import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Runs one projection: takes its lease (or stands by until it can), follows the global log from
/// the store's checkpoint, and applies each batch with its checkpoint atomically. An event the
/// projection cannot handle after `maxAttempts` is parked and its stream held back; the rest
/// flows on. Operators' retry and skip requests are worked off whenever the runner is caught up.
public struct ProjectorRunner<Store: ProjectionStore>: Service {
    public let store: Store
    let events: any EventStore
    let signal: AppendSignal
    let leases: any LeaseProvider
    let parking: any ParkedEventStore
    let maxAttempts: Int
    let batchSize: Int
    let standbyInterval: Duration
    let pollInterval: Duration
    let logger: Logger
    let metrics: ProjectorMetrics

    public init(
        store: Store, events: any EventStore, signal: AppendSignal, leases: any LeaseProvider,
        parking: any ParkedEventStore, maxAttempts: Int = 3, batchSize: Int? = nil,
        standbyInterval: Duration = .seconds(1), pollInterval: Duration = .milliseconds(500),
        metrics: any MetricsFactory = NOOPMetricsHandler.instance, lagAlsoReportedAs: String? = nil, logger: Logger
    ) {
        self.store = store
        self.events = events
        self.signal = signal
        self.leases = leases
        self.parking = parking
        self.maxAttempts = max(1, maxAttempts)
        self.batchSize = max(1, batchSize ?? store.batchSize)
        self.standbyInterval = standbyInterval
        self.pollInterval = pollInterval
        self.metrics = ProjectorMetrics(projector: store.projectorName, alias: lagAlsoReportedAs, factory: metrics)
        var logger = logger
        logger[metadataKey: "es.projector"] = "\(store.projectorName)"
        self.logger = logger
    }

    public var name: String { store.projectorName }

    /// Holds the lease while it can, stands by while another process does; until cancelled or
    /// the service group shuts down gracefully.
    public func run() async throws {
        try await cancelWhenGracefulShutdown { try await runUntilCancelled() }
    }

    func runUntilCancelled() async throws {
        try await store.prepareStorage()
        while !Task.isCancelled {
            do {
                let held = try await leases.withLease(name) { epoch in
                    logger.info("lease taken", metadata: ["es.epoch": "\(epoch)"])
                    try await runAsHolder(epoch: epoch)
                }
                if !held { try await Task.sleep(for: standbyInterval) }
            } catch is CancellationError {
                return
            } catch let error as ProjectionError {
                logger.warning("stopped writing", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: standbyInterval)
            } catch {
                if Task.isCancelled { return }
                logger.error("projector failed; retrying", metadata: ["error": "\(String(reflecting: error))"])
                try? await Task.sleep(for: standbyInterval)
            }
        }
    }

    func runAsHolder(epoch: Int64) async throws {
        if try await store.upgradeIfNeeded(events: events) {
            logger.notice("read model rebuilt for its new shape")
        }
        let start = try await store.checkpoint()
        let held = HeldStreams(try await parking.heldStreams(projector: name))
        let follower = EventFollower(store: events, signal: signal, batchSize: batchSize, pollInterval: pollInterval, logger: logger)
        let applied = Mutex(start)
        let store = self.store
        try await follower.follow(from: start, onIdle: {
            metrics.caughtUp()
            try await settleRequests(epoch: epoch, held: held)
        }, prepare: { await store.prepare($0) }) { batch, prepared in
            var steps = batch.map { step(for: $0, held: held) }
            let through = batch[batch.count - 1].checkpoint
            let after = applied.withLock { $0 }
            do {
                try await store.apply(steps, prepared: prepared, after: after, through: through, epoch: epoch)
            } catch where store.refusedData(error) != nil {
                logger.warning("the read model refused a batch's data; applying it event by event", metadata: [
                    "error": "\(store.refusedData(error) ?? "")", "events": "\(steps.count)",
                ])
                steps = try await applyOneByOne(steps, after: after, epoch: epoch, held: held)
            }
            applied.withLock { $0 = through }
            metrics.record(steps)
            // Behind the log: count how far, at most every few seconds (a count on every batch
            // would cost more than the batch during a catch-up).
            if batch.count == batchSize, metrics.lagSampleDue(), let probe = events as? any LagProbe,
                let behind = try? await probe.eventsAfter(through, cap: 1_000_000)
            {
                metrics.recordLag(events: behind)
            }
        }
    }

    /// Applies, parks or holds one event.
    func step(for event: RecordedEvent, held: HeldStreams) -> ProjectionStep<Store.Writes> {
        if let behind = held.blocker(of: event.streamID) {
            return .hold(event, behind: behind)
        }
        var lastError = ""
        for _ in 1...maxAttempts {
            do {
                return .apply(event, try store.writes(for: event))
            } catch {
                lastError = String(describing: error)
            }
        }
        held.hold(event.streamID, behind: event.eventID)
        logger.error("event parked", metadata: ["es.event_id": "\(event.eventID)", "es.stream": "\(event.streamID)", "error": "\(lastError)"])
        return .park(event, error: lastError, attempts: maxAttempts)
    }

    /// After a batch was refused for its data: each event alone, in order, so the one at fault is
    /// parked (after `maxAttempts`) and its stream held, and every other event is applied. Rare,
    /// so one transaction per event is fine. Returns the steps as finally applied.
    func applyOneByOne(
        _ steps: [ProjectionStep<Store.Writes>], after: Checkpoint, epoch: Int64, held: HeldStreams
    ) async throws -> [ProjectionStep<Store.Writes>] {
        var cursor = after
        var done: [ProjectionStep<Store.Writes>] = []
        for original in steps {
            var step = original
            if case .apply(let event, _) = step, let blocker = held.blocker(of: event.streamID) {
                step = .hold(event, behind: blocker)
            }
            var tries = 0
            while true {
                do {
                    try await store.apply([step], after: cursor, through: step.event.checkpoint, epoch: epoch)
                    break
                } catch {
                    guard case .apply(let event, _) = step, let reason = store.refusedData(error) else { throw error }
                    tries += 1
                    guard tries >= maxAttempts else { continue }
                    held.hold(event.streamID, behind: event.eventID)
                    logger.error("event parked", metadata: ["es.event_id": "\(event.eventID)", "es.stream": "\(event.streamID)", "error": "\(reason)"])
                    step = .park(event, error: reason, attempts: tries)
                }
            }
            cursor = step.event.checkpoint
            done.append(step)
        }
        return done
    }

    /// Works off operators' retry and skip requests, releasing the held streams behind them.
    func settleRequests(epoch: Int64, held: HeldStreams) async throws {
        for request in try await parking.requested(projector: name) {
            var blocker = request.eventID
            var toApply: [(RecordedEvent, Store.Writes)] = []
            var failed: (RecordedEvent, String)?
            if request.status == ParkedEvent.Action.retry.rawValue {
                let event = try await load(request)
                do { toApply.append((event, try store.writes(for: event))) } catch { failed = (event, String(describing: error)) }
            } else {
                try await parking.forget(projector: name, eventIDs: [request.eventID])
            }
            if failed == nil {
                for waiting in try await parking.heldBehind(projector: name, eventID: request.eventID) {
                    let event = try await load(waiting)
                    do { toApply.append((event, try store.writes(for: event))) } catch {
                        failed = (event, String(describing: error))
                        break
                    }
                }
            }
            if !toApply.isEmpty {
                do {
                    try await store.applyReleased(toApply, epoch: epoch)
                } catch where store.refusedData(error) != nil {
                    // One of them is refused again for its data: apply those before it, and
                    // park it again with the rest still held behind it.
                    for (event, writes) in toApply {
                        do {
                            try await store.applyReleased([(event, writes)], epoch: epoch)
                        } catch {
                            guard let reason = store.refusedData(error) else { throw error }
                            failed = (event, reason)
                            break
                        }
                    }
                }
            }
            if let (event, error) = failed {
                try await parking.repark(projector: name, eventID: event.eventID, error: error, previous: blocker)
                blocker = event.eventID
                held.hold(event.streamID, behind: blocker)
                logger.error("released event failed again and stays parked", metadata: ["es.event_id": "\(event.eventID)"])
            } else {
                held.release(request.streamID)
                logger.info("parked event settled", metadata: ["es.event_id": "\(request.eventID)", "action": "\(request.status)"])
            }
        }
    }

    private func load(_ parked: ParkedEvent) async throws -> RecordedEvent {
        let found = try await events.readStream(parked.streamID, from: parked.streamVersion, direction: .forward, limit: 1)
        guard let event = found.first, event.eventID == parked.eventID else {
            throw ProjectionError.fenced(projector: "\(name): parked event \(parked.eventID) not found")
        }
        return event
    }
}

/// Streams held back behind a parked event, shared by the batch handler and request settling.
final class HeldStreams: Sendable {
    private let streams: Mutex<[String: UUID]>

    init(_ initial: [String: UUID]) { streams = Mutex(initial) }

    func blocker(of stream: String) -> UUID? { streams.withLock { $0[stream] } }
    func hold(_ stream: String, behind event: UUID) { streams.withLock { $0[stream] = event } }
    func release(_ stream: String) { streams.withLock { _ = $0.removeValue(forKey: stream) } }
}

/// Per projector: events applied and parked, and how far behind the log it runs. The lag in
/// events may also be reported under a second name (the relay's outbox depth).
final class ProjectorMetrics: Sendable {
    let handled: Counter
    let parked: Counter
    let lagSeconds: Gauge
    let lagEvents: [Gauge]
    let lastLagSample = Mutex<ContinuousClock.Instant?>(nil)
    static let lagSampleInterval = Duration.seconds(5)

    init(projector: String, alias: String?, factory: any MetricsFactory) {
        let dimensions = [("projector", projector)]
        handled = Counter(label: "chronicle_projector_events_total", dimensions: dimensions, factory: factory)
        parked = Counter(label: "chronicle_projector_parked_total", dimensions: dimensions, factory: factory)
        lagSeconds = Gauge(label: "chronicle_projector_lag_seconds", dimensions: dimensions, factory: factory)
        lagEvents = [Gauge(label: "chronicle_projector_lag_events", dimensions: dimensions, factory: factory)]
            + (alias.map { [Gauge(label: $0, dimensions: [], factory: factory)] } ?? [])
    }

    /// True at most once per `lagSampleInterval`.
    func lagSampleDue() -> Bool {
        lastLagSample.withLock { last in
            let now = ContinuousClock.now
            if let last, last.duration(to: now) < Self.lagSampleInterval { return false }
            last = now
            return true
        }
    }

    func recordLag(events: Int) {
        for gauge in lagEvents { gauge.record(events) }
    }

    /// Caught up with the log: no lag.
    func caughtUp() {
        recordLag(events: 0)
        lagSeconds.record(0)
    }

    func record<W>(_ steps: [ProjectionStep<W>]) {
        var applied = 0, parkedCount = 0
        for step in steps {
            if case .apply = step { applied += 1 } else { parkedCount += 1 }
        }
        handled.increment(by: applied)
        if parkedCount > 0 { parked.increment(by: parkedCount) }
        if let last = steps.last?.event {
            lagSeconds.record(max(0, Date().timeIntervalSince(last.recordedAt)))
        }
    }
}
