import Foundation
import Synchronization

/// Whether a worker pool can take work, for `/health`: connected to its queue, and not every slot
/// held for longer than `stallAfter` with nothing settled (the probe saw two unsettled items stop
/// every sandbox run for minutes while `/health` said ok).
public final class WorkerStatus: Sendable {
    struct State {
        var connected = false
        var lastError: String?
        var inFlight = 0
        /// Since when every slot has been busy, if it is.
        var fullSince: ContinuousClock.Instant?
        var everConnected = false
    }

    public let concurrency: Int
    public let stallAfter: Duration
    /// A pool that has not connected yet is starting, not down, for this long.
    public static let startupGrace: Duration = .seconds(10)
    private let state = Mutex(State())
    private let created = ContinuousClock.now

    public init(concurrency: Int, stallAfter: Duration) {
        self.concurrency = concurrency
        self.stallAfter = stallAfter
    }

    func connected() { state.withLock { $0.connected = true; $0.everConnected = true; $0.lastError = nil } }

    func disconnected(_ error: String) { state.withLock { $0.connected = false; $0.lastError = error } }

    func started() {
        state.withLock {
            $0.inFlight += 1
            if $0.inFlight >= concurrency, $0.fullSince == nil { $0.fullSince = .now }
        }
    }

    /// An item settled: the pool made progress, so a full pool's clock starts again.
    func settled() {
        state.withLock {
            $0.inFlight -= 1
            $0.fullSince = $0.inFlight >= concurrency ? .now : nil
        }
    }

    /// Nil when the pool can take work; otherwise why not, in words for an operator.
    public func problem(now: ContinuousClock.Instant = .now) -> String? {
        state.withLock { state in
            guard state.connected else {
                if !state.everConnected {
                    return now - created < Self.startupGrace ? nil : "not connected to its queue yet (\(state.lastError ?? "connecting"))"
                }
                return "not connected to its queue (\(state.lastError ?? "reconnecting"))"
            }
            if let since = state.fullSince, now - since > stallAfter {
                return "all \(concurrency) slots busy for \((now - since).components.seconds) s with nothing finished"
            }
            return nil
        }
    }
}
