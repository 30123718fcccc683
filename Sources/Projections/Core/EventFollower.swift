import Commands
import Events
import Foundation
import Logging
import Metrics

/// Follows the global log from a checkpoint: reads in batches in checkpoint order, and when caught
/// up waits for an append signal or the poll interval, whichever comes first. The store's safe
/// read order is what makes it never skip and never repeat; the follower only ever moves its
/// checkpoint to the last event it handed over.
public struct EventFollower: Sendable {
    public let store: any EventStore
    public let signal: AppendSignal
    public let batchSize: Int
    public let pollInterval: Duration
    /// How long the reader may wait behind an open transaction before it warns (and again after
    /// each further such while, for as long as it waits).
    public let heldBackWarning: Duration
    let heldBackSeconds: Metrics.Timer
    let logger: Logger

    public init(
        store: any EventStore, signal: AppendSignal, batchSize: Int = 500, pollInterval: Duration = .milliseconds(500),
        heldBackWarning: Duration = .seconds(30), metrics: any MetricsFactory = NOOPMetricsHandler.instance,
        logger: Logger = Logger(label: "chronicle.follower")
    ) {
        self.store = store
        self.signal = signal
        self.batchSize = batchSize
        self.pollInterval = pollInterval
        self.heldBackWarning = heldBackWarning
        self.heldBackSeconds = Metrics.Timer(
            label: "chronicle_eventstore_reader_held_back_seconds", dimensions: [], preferredDisplayUnit: .seconds,
            factory: metrics)
        self.logger = logger
    }

    /// Hands each non-empty batch to `handle` until cancelled or `handle` throws. A batch is never
    /// handed over twice, and the next read starts after its last event. `onIdle` runs each time
    /// the follower has caught up, before it waits.
    public func follow(
        from start: Checkpoint, onIdle: @Sendable () async throws -> Void = {},
        _ handle: @Sendable ([RecordedEvent]) async throws -> Void
    ) async throws {
        try await follow(from: start, onIdle: onIdle, prepare: { _ in () }) { batch, _ in try await handle(batch) }
    }

    /// As `follow(from:onIdle:_:)`, with `prepare` run on each batch before it is handed over.
    /// While the follower is behind, the next batch is read and prepared while this one is
    /// handled, so `prepare` must depend on the batch's events alone (decoding them), never on
    /// what handling the batches before it did.
    public func follow<Prepared: Sendable>(
        from start: Checkpoint, onIdle: @Sendable () async throws -> Void = {},
        prepare: @escaping @Sendable ([RecordedEvent]) async -> Prepared,
        _ handle: @Sendable ([RecordedEvent], Prepared) async throws -> Void
    ) async throws {
        let store = self.store, batchSize = self.batchSize
        @Sendable func page(after checkpoint: Checkpoint) async throws -> ([RecordedEvent], Prepared) {
            let batch = try await store.readAll(after: checkpoint, limit: batchSize)
            return (batch, await prepare(batch))
        }
        var checkpoint = start
        var heldSince: ContinuousClock.Instant?
        var warned: ContinuousClock.Instant?
        var prefetched: ([RecordedEvent], Prepared)?
        while !Task.isCancelled {
            let generation = signal.generation
            let batch: [RecordedEvent], prepared: Prepared
            if let ready = prefetched {
                (batch, prepared) = ready
            } else {
                (batch, prepared) = try await page(after: checkpoint)
            }
            prefetched = nil
            if let last = batch.last {
                if batch.count == batchSize {
                    // Behind the log: read and prepare the next page while this one is handled.
                    async let next = page(after: last.checkpoint)
                    try await handle(batch, prepared)
                    checkpoint = last.checkpoint
                    prefetched = try await next
                    continue
                }
                try await handle(batch, prepared)
                checkpoint = last.checkpoint
            }
            if let probe = store as? any HoldBackProbe, (try? await probe.heldBack(after: checkpoint)) == true {
                // Committed events wait behind an open transaction: poll briefly until it ends.
                // A transaction left open (a forgotten session, a stuck client) would stall every
                // reader of the log in silence: past a while, say which one, and again now and then.
                let now = ContinuousClock.now
                if heldSince == nil { heldSince = now }
                if let since = heldSince, since.duration(to: now) >= heldBackWarning,
                   warned.map({ $0.duration(to: now) >= heldBackWarning }) ?? true {
                    warned = now
                    let holders = (try? await probe.holdingBack()) ?? []
                    logger.warning("reading the log is held back by an open transaction", metadata: [
                        "es.held_back_seconds": "\(since.duration(to: now).components.seconds)",
                        "es.held_back_by": "\(holders.isEmpty ? "(none could be named: it may have just ended)" : holders.joined(separator: "; "))",
                    ])
                }
                try await Task.sleep(for: .milliseconds(20))
                continue
            }
            if let since = heldSince {
                heldBackSeconds.recordInterval(since.duration(to: .now))
                heldSince = nil
                warned = nil
            }
            try await onIdle()
            await signal.wait(after: generation, timeout: pollInterval)
        }
    }
}

extension Metrics.Timer {
    func recordInterval(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
