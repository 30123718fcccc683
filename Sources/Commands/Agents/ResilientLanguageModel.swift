import Events
import Foundation
import Synchronization

/// Wraps a model with what every outside call needs (seed 000 §4.1): a timeout per try, retries
/// with backoff on rate limits, server errors, timeouts and lost connections, and a circuit
/// breaker that fails fast while the model is unhealthy. Refused requests (4xx) are not retried.
public final class ResilientLanguageModel: LanguageModel {
    public struct Policy: Sendable, Equatable {
        /// Tries in all, the first included.
        public var tries: Int
        /// Wait before try 2, 3, ...; the last repeats. A 429's `Retry-After` waits longer if it says so.
        public var backoff: [Duration]
        public var timeout: Duration
        public var breaker: CircuitBreaker.Configuration

        public init(
            tries: Int = 3, backoff: [Duration] = [.seconds(1), .seconds(2), .seconds(4)], timeout: Duration = .seconds(30),
            breaker: CircuitBreaker.Configuration = .init()
        ) {
            self.tries = max(1, tries)
            self.backoff = backoff.isEmpty ? [.seconds(1)] : backoff
            self.timeout = timeout
            self.breaker = breaker
        }
    }

    let base: any LanguageModel
    let calls: ResilientCalls
    public var policy: Policy { calls.policy }

    public init(_ base: any LanguageModel, policy: Policy = Policy()) {
        self.base = base
        calls = ResilientCalls(policy: policy)
    }

    public var breakerState: CircuitBreaker.State { calls.breakerState }

    public func complete(_ request: ChatRequest) async throws -> ChatResponse {
        try await calls.run { try await self.base.complete(request) }
    }

    public func stream(_ request: ChatRequest) -> AsyncThrowingStream<ChatStreamEvent, any Error> {
        let calls = self.calls
        let decision = calls.breaker.withLock { $0.permit(now: calls.now) }
        if case .reject(let retry) = decision {
            return AsyncThrowingStream { $0.finish(throwing: LanguageModelError.circuitOpen(retryInSeconds: retry)) }
        }
        let upstream = base.stream(request)
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    for try await event in upstream { continuation.yield(event) }
                    calls.breaker.withLock { $0.record(failed: false, now: calls.now) }
                    continuation.finish()
                } catch {
                    let counts = (error as? LanguageModelError)?.countsAsFailure ?? !(error is CancellationError)
                    calls.breaker.withLock { counts ? $0.record(failed: true, now: calls.now) : $0.abandon() }
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

/// What every call to an outside service gets (the chat model's, the embedder's): a timeout per
/// try, retries with backoff on rate limits, server errors, timeouts and lost connections, and a
/// circuit breaker that fails fast while the service is unhealthy. Refused requests (4xx) are
/// not retried. Errors that are not the port's count as failures and come out as `unreachable`;
/// an `EmbedderError` (a malformed reply) counts and comes out as itself.
public final class ResilientCalls: Sendable {
    public let policy: ResilientLanguageModel.Policy
    let breaker: Mutex<CircuitBreaker>
    let origin = ContinuousClock.now

    public init(policy: ResilientLanguageModel.Policy) {
        self.policy = policy
        breaker = Mutex(CircuitBreaker(policy.breaker))
    }

    public var breakerState: CircuitBreaker.State { breaker.withLock { $0.state } }

    var now: Double {
        let elapsed = ContinuousClock.now - origin
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    public func run<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        var attempt = 1
        while true {
            do {
                return try await once(body)
            } catch let error as LanguageModelError where error.isRetryable && attempt < policy.tries {
                var delay = policy.backoff[min(attempt - 1, policy.backoff.count - 1)]
                if case .rateLimited(let after?) = error { delay = max(delay, .milliseconds(Int(min(after, 30) * 1000))) }
                try await Task.sleep(for: delay)
                attempt += 1
            }
        }
    }

    /// One try through the breaker, bounded by the timeout.
    func once<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let decision = breaker.withLock { $0.permit(now: now) }
        if case .reject(let retry) = decision { throw LanguageModelError.circuitOpen(retryInSeconds: retry) }
        do {
            let value = try await withTimeout(policy.timeout, body)
            breaker.withLock { $0.record(failed: false, now: now) }
            return value
        } catch let error as LanguageModelError {
            breaker.withLock { error.countsAsFailure ? $0.record(failed: true, now: now) : $0.record(failed: false, now: now) }
            throw error
        } catch is CancellationError {
            breaker.withLock { $0.abandon() }
            throw CancellationError()
        } catch let error as EmbedderError {
            breaker.withLock { $0.record(failed: true, now: now) }
            throw error
        } catch {
            breaker.withLock { $0.record(failed: true, now: now) }
            throw LanguageModelError.unreachable("\(error)")
        }
    }
}

/// Runs `body`, or throws `LanguageModelError.timedOut` once `limit` passes (cancelling it).
func withTimeout<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            let parts = limit.components
            throw LanguageModelError.timedOut(seconds: Double(parts.seconds) + Double(parts.attoseconds) / 1e18)
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}
