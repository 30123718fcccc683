import Commands
import Events
import Foundation
import Synchronization

/// One subscriber of an `EventHub`: read it with `next()` from one task at a time, and `cancel()`
/// it when done (the hub holds it until then).
public final class HubSubscription: Sendable {
    public let filter: HubFilter
    let capacity: Int
    let hub: EventHub
    let inner: Mutex<Inner>

    enum Phase {
        /// Reading the log after `cursor`; `liveOnly` waits for the hub to start instead.
        case catchingUp(cursor: Checkpoint, liveOnly: Bool)
        /// In the hub's fan-out; `cursor` is the last event looked at.
        case live(cursor: Checkpoint)
        case ended
    }

    struct Inner {
        var phase: Phase
        var buffer: [HubMessage] = []
        var waiter: CheckedContinuation<HubMessage?, Never>?
        var id: UInt64?
    }

    enum Offer { case kept(wake: Bool), overflowed }

    /// What `next(timeout:)` found.
    public enum Next: Sendable, Equatable {
        case message(HubMessage)
        /// Nothing arrived in time; the subscription goes on.
        case idle
        /// The subscription ended (cancelled, or the hub stopped).
        case ended
    }

    init(hub: EventHub, filter: HubFilter, capacity: Int, after: Checkpoint?) {
        self.hub = hub
        self.filter = filter
        self.capacity = capacity
        inner = Mutex(Inner(phase: .catchingUp(cursor: after ?? .start, liveOnly: after == nil)))
    }

    var id: UInt64? {
        get { inner.withLock { $0.id } }
        set { inner.withLock { $0.id = newValue } }
    }

    /// Called by the hub, under its lock, when the subscriber joins the fan-out.
    func goLive(at cursor: Checkpoint) {
        inner.withLock { $0.phase = .live(cursor: cursor) }
    }

    /// Called by the hub, under its lock: buffers the matching events of a batch, or, if they do
    /// not fit, ends the subscription with the checkpoint to resume after.
    func offer(_ batch: [RecordedEvent]) -> Offer {
        inner.withLock { inner in
            guard case .live(var cursor) = inner.phase else { return .kept(wake: false) }
            var added = false
            for event in batch where event.checkpoint > cursor {
                if filter.matches(event) {
                    guard inner.buffer.count < capacity else {
                        inner.buffer.append(.dropped(resumeAfter: cursor))
                        inner.phase = .ended
                        return .overflowed
                    }
                    inner.buffer.append(.event(event))
                    added = true
                }
                cursor = event.checkpoint
            }
            inner.phase = .live(cursor: cursor)
            return .kept(wake: added && inner.waiter != nil)
        }
    }

    /// Hands the first buffered message to a waiting `next()` (or nil once ended).
    func wake() {
        let handoff = inner.withLock { inner -> (CheckedContinuation<HubMessage?, Never>, HubMessage?)? in
            guard let waiter = inner.waiter else { return nil }
            if !inner.buffer.isEmpty {
                inner.waiter = nil
                return (waiter, inner.buffer.removeFirst())
            }
            if case .ended = inner.phase {
                inner.waiter = nil
                return (waiter, nil)
            }
            return nil
        }
        if let (waiter, message) = handoff { waiter.resume(returning: message) }
    }

    /// Ends the subscription; a waiting `next()` returns what is buffered, then nil.
    func end() {
        inner.withLock { $0.phase = .ended }
        wake()
    }

    /// Leaves the hub. Messages still buffered are dropped.
    public func cancel() {
        hub.leave(self)
        inner.withLock {
            $0.phase = .ended
            $0.buffer = []
        }
        wake()
    }

    /// The next message: a matching event, or the drop notice as the last one. Nil when the
    /// subscription ended, or the calling task was cancelled. Throws only while catching up, if
    /// the log cannot be read.
    public func next() async throws -> HubMessage? {
        while true {
            let phase = inner.withLock { inner -> Phase? in
                if !inner.buffer.isEmpty { return nil }
                return inner.phase
            }
            guard case .catchingUp(let cursor, let liveOnly) = phase else { return await take() }
            if hub.join(self, at: liveOnly ? nil : cursor) { continue }
            guard !Task.isCancelled else { return nil }
            if liveOnly {
                try await Task.sleep(for: .milliseconds(20))
                continue
            }
            let batch = try await hub.store.readAll(after: cursor, limit: 256)
            hub.countCatchUpRead()
            guard let last = batch.last else {
                // The hub has fanned out events this reader cannot see yet: they are a moment away.
                try await Task.sleep(for: .milliseconds(20))
                continue
            }
            inner.withLock { inner in
                guard case .catchingUp = inner.phase else { return }
                inner.buffer += batch.filter(filter.matches).map(HubMessage.event)
                inner.phase = .catchingUp(cursor: last.checkpoint, liveOnly: false)
            }
        }
    }

    /// `next()`, giving up after `timeout` with `.idle` (for keep-alives). A message that races
    /// the timer is returned, never lost.
    public func next(timeout: Duration) async throws -> Next {
        // A message already buffered needs no timer (the common case for a busy stream).
        if let buffered = inner.withLock({ $0.buffer.isEmpty ? nil : $0.buffer.removeFirst() }) { return .message(buffered) }
        return try await withThrowingTaskGroup(of: Next.self) { group in
            group.addTask {
                do {
                    if let message = try await self.next() { return .message(message) }
                } catch is CancellationError {
                    return .idle
                }
                return Task.isCancelled ? .idle : .ended
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return .idle
            }
            var found: Next = .idle
            while let result = try await group.next() {
                group.cancelAll()
                switch (found, result) {
                case (_, .message): found = result
                case (.idle, .ended): found = result
                default: break
                }
            }
            return found
        }
    }

    /// Waits for a buffered message while live.
    private func take() async -> HubMessage? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let ready = inner.withLock { inner -> (HubMessage?, Bool) in
                    if !inner.buffer.isEmpty { return (inner.buffer.removeFirst(), true) }
                    if case .ended = inner.phase { return (nil, true) }
                    if Task.isCancelled { return (nil, true) }
                    inner.waiter = continuation
                    return (nil, false)
                }
                if ready.1 { continuation.resume(returning: ready.0) }
            }
        } onCancel: {
            let waiter = inner.withLock { inner -> CheckedContinuation<HubMessage?, Never>? in
                defer { inner.waiter = nil }
                return inner.waiter
            }
            waiter?.resume(returning: nil)
        }
    }
}
